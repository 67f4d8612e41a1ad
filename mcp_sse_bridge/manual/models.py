"""The manual's data model: UTCP's SSE call template, auth kinds and tools, as pydantic models.

Models are strict (a manual is JSON, so `"30000"` is not an int) and ignore unknown keys; the
reader (`reader.py`) warns about those before validating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RESERVED_ARGUMENTS: tuple[str, ...] = (
    "max_events",
    "max_seconds",
    "last_event_id",
    "until_event",
    "event_types",
    "match",
    "fields",
    "latest_per",
    "summary",
    "format",
)
"""Control arguments the bridge adds to every tool; a manual input may not use these names."""


class _Model(BaseModel):
    # Strict: a manual is JSON, so "true" for a bool or "30000" for an int is a mistake to report.
    model_config = ConfigDict(extra="ignore", strict=True)


class ApiKeyAuth(_Model):
    auth_type: Literal["api_key"] = "api_key"
    api_key: str
    var_name: str = "X-Api-Key"
    location: Literal["header", "query", "cookie"] = "header"


class BasicAuth(_Model):
    auth_type: Literal["basic"] = "basic"
    username: str
    password: str


class OAuth2Auth(_Model):
    auth_type: Literal["oauth2"] = "oauth2"
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


Auth = Annotated[ApiKeyAuth | BasicAuth | OAuth2Auth, Field(discriminator="auth_type")]
AUTH_MODELS: dict[str, type[_Model]] = {
    "api_key": ApiKeyAuth,
    "basic": BasicAuth,
    "oauth2": OAuth2Auth,
}


class SseCallTemplate(_Model):
    """UTCP's SSE call template, with UTCP's defaults."""

    call_template_type: Literal["sse"] = "sse"
    url: str = Field(min_length=1)
    event_type: str | None = None
    reconnect: bool = True
    retry_timeout: int = Field(default=30000, ge=0, le=3_600_000)  # an hour: no float overflow
    headers: dict[str, str] | None = None
    body_field: str | None = None
    header_fields: list[str] | None = None
    auth: Auth | None = None


class ToolSpec(_Model):
    """One tool of a manual; `template` is read from the JSON key `tool_call_template`."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    name: str = Field(min_length=1)
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    outputs: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    average_response_size: int | None = Field(default=None, ge=0)
    template: SseCallTemplate = Field(alias="tool_call_template")


@dataclass
class Manual:
    name: str
    source: str
    trusted: bool
    tools: list[ToolSpec]
    warnings: list[str] = field(default_factory=list)
