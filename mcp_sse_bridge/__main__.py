"""`python -m mcp_sse_bridge` behaves like the `mcp-sse-bridge` console script."""

from mcp_sse_bridge.cli import main

raise SystemExit(main())
