"""Authoring manuals: probing a live event stream, and writing the manual it suggests.

Owns `mcp-sse-bridge probe`: the sampling (`probe.py`), the data-schema inference
(`inference.py`), the id and `Last-Event-ID` analysis (`ids.py`), the findings as data and text
(`report.py`), the tool a probe suggests (`suggest.py`), and writing a manual to disk
(`writing.py`, also used by `import`). Reading OpenAPI documents is in `manual/openapi/`
instead, because `--manual openapi.yaml` loads through `manual/loading.py`, which must not
import upwards.

May import `manual/`, `upstream/` and `calls/`; never `server/` or `cli/` (nor `mcp`). A probe
connects exactly as a call does: it runs a real `calls.Bridge` call on the tool it suggests.
"""
