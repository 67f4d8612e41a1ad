"""Helpers of the acceptance tests: the bridge as its users run it, and upstreams with quirks.

The acceptance tests (the behaviour-named `tests/test_*.py` files that import from here) are
written from the outside: every case comes from a source outside the code (the WHATWG
"Server-sent events" text and the web-platform-tests `eventsource/` corpus, the README,
DESIGN.md, the issues, what real servers write) and drives only public entry points: the parser,
`parse_manual`, `Bridge`, the MCP server through a real `mcp.Client` on every transport, and the
command line. Upstreams are real loopback servers (`tests/sse_server.py`).

- `bridges`: manuals, and the bridge in process, over stdio, over streamable HTTP, raw JSON-RPC.
- `cli`: the `mcp-sse-bridge` command as a subprocess, or `cli.main` in process.
- `credentials`: the secrets the tests hand out, so every check can look for them.
- `results`: reading and judging a call's result the way a strict host does.
- `upstreams`: small shared handlers (an echo, ticks, scripts).
- `network`, `quirks`, `restartable`: TLS, proxies, compression, /proc figures; servers with
  quirks; an upstream that restarts on its port.
"""
