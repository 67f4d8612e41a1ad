"""Calls: one tool call's control arguments, filters and bounds, and the `Bridge` that runs it.

Owns the library facade (`Bridge`, `Limits`, `bridge.py`), the control arguments
(`arguments.py`), what a call asks for (`filters.py`), the pass over the stream and the batch
it returns (`batch.py`), events in the result shape (`events.py`) and the masking of secrets
(`redaction.py`). Imports `manual`, `upstream` and `shaping` (and the shared `errors`, `urls`);
never `subscriptions`, `authoring`, `server`, `cli` or `mcp`.
"""
