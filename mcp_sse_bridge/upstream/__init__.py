"""The upstream side: tool arguments -> HTTP request (with auth) -> connection -> SSE events.

Owns requests (`request.py`), auth (`auth.py`), the event-stream parser (`sse.py`), the
reconnecting stream (`stream.py`) with its retry rules (`retry.py`) and refusals
(`refusal.py`), and the HTTP client and sockets under it (`transport.py`, `network.py`).
Imports `errors`, `urls` and `manual`; never `shaping`, `calls` or anything above them.
"""
