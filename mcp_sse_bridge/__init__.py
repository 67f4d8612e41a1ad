"""mcp-sse-bridge: upstream Server-Sent-Events APIs, described by UTCP manuals, as MCP tools."""

__version__ = "0.1.0"
