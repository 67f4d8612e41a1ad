"""`python -m mcp_sse_bridge` behaves like the `mcp-sse-bridge` console script."""

from .cli.main import main

raise SystemExit(main())
