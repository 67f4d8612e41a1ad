"""Manuals: the UTCP model, loading and checking, MCP tool names, `${VAR}` variables and secrets.

Owns everything known before a call starts: the models (`models.py`), reading and checking a
manual's tree (`reader.py`, `schemas.py`, `portability.py`), loading files and URLs as JSON or
YAML (`loading.py`, `yaml_reading.py`), OpenAPI documents as manuals (`openapi/`), tool names
(`naming.py`) and variables (`variables.py`). Imports only `errors` and `urls`; nothing above
(upstream, calls, subscriptions, server, cli) is imported here.
"""

from .loading import load_manual, parse_manual
from .models import (
    RESERVED_ARGUMENTS,
    ApiKeyAuth,
    Auth,
    BasicAuth,
    Manual,
    OAuth2Auth,
    SseCallTemplate,
    ToolSpec,
)
from .naming import sanitise_name, tool_names

__all__ = [
    "RESERVED_ARGUMENTS",
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "Manual",
    "OAuth2Auth",
    "SseCallTemplate",
    "ToolSpec",
    "load_manual",
    "parse_manual",
    "sanitise_name",
    "tool_names",
]
