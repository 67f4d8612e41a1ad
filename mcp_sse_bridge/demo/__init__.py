"""The bundled demo: a loopback SSE feed, its manual, and an end-to-end run through MCP.

Owns `mcp-sse-bridge demo`'s parts: the feed (`feed.py`, Starlette on loopback), the manual
(`demo.json`) and the run (`run.py`), which starts the bridge as a host would, as a subprocess
over stdio, with a real `mcp` client. So it imports nothing of the package but itself (and
`mcp`); only `cli` imports it.
"""
