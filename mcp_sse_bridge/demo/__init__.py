"""The bundled demo: a loopback SSE feed, its manual, and an end-to-end run through MCP."""
