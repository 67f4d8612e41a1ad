"""Authoring manuals: probing a live event stream, and writing the manual it suggests.

Owns `mcp-sse-bridge probe`'s sampling and findings (`probe.py`, with the data-schema inference
of `inference.py` and the id and keep-alive analysis of `ids.py`), the tool a probe suggests
(`suggest.py`), and writing a manual to disk (`writing.py`). Reading OpenAPI documents is in
`manual/openapi/` instead, because `--manual openapi.yaml` loads through `manual/loading.py`,
which must not import upwards.

May import `manual/`, `upstream/` and `calls/`; never `server/` or `cli/` (nor `mcp`). A probe
connects exactly as a call does: it runs a real `calls.Bridge` call on the tool it suggests.
"""
