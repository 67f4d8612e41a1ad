"""Typed errors: each says what failed, where, and how to fix it.

Every error that can reach a user derives from `BridgeError`. The MCP layer turns one into an
`is_error=True` result and the CLI into a one-line message; neither ever shows a traceback.
Messages must already be redacted (see `variables.SecretRegistry.redact`) before they leave
the engine.
"""

from __future__ import annotations

import html
import re


class BridgeError(Exception):
    """Base of every user-facing error: `message` says what failed, `hint` what to do."""

    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ManualError(BridgeError):
    """A manual cannot be read or is invalid (names file, JSON path and fix)."""

    kind = "manual"


class VariableError(BridgeError):
    """A `${VAR}` could not be resolved; `names` lists every name that would satisfy it."""

    kind = "missing_variable"

    def __init__(self, message: str, *, names: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.names = names


class ArgumentError(BridgeError):
    """A tool argument is invalid; `argument` names it."""

    kind = "bad_argument"

    def __init__(self, message: str, *, argument: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.argument = argument


class LimitError(BridgeError):
    """A bridge-wide limit was reached (subscriptions); the message names the flag to raise."""

    kind = "limit"


class InsecureURLError(BridgeError):
    """A plain-http URL to a non-loopback host, without `--allow-insecure-http`."""

    kind = "insecure_url"


class UpstreamError(BridgeError):
    """The upstream SSE server failed; `status` is the HTTP status when there was one, and
    `retry_after` the seconds its `Retry-After` asked for (None when absent or unusable)."""

    kind = "upstream"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str = "",
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after


class ConnectError(UpstreamError):
    """The server could not be reached, or sent no response headers in time."""

    kind = "connect"


class AuthError(UpstreamError):
    """401/403 from the upstream, or a failed OAuth2 token request."""

    kind = "auth"


class ServerError(UpstreamError):
    """5xx from the upstream."""

    kind = "server"


class HTTPStatusError(UpstreamError):
    """Any other non-2xx status (404, 3xx not followed, 4xx)."""

    kind = "http_status"


class ProtocolError(UpstreamError):
    """The response is not an event stream (wrong Content-Type, oversize line in strict mode)."""

    kind = "protocol"


EXCERPT_CHARS = 300
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.DOTALL | re.I)


def excerpt(text: str, *, html_markup: bool = False, limit: int = EXCERPT_CHARS) -> str:
    """The start of an upstream body as one short printable line, for an error message.

    Control and invisible characters go (they could forge log lines or hide text), whitespace is
    folded, HTML tags are dropped when the body is a page, and lone surrogates (from JSON
    escapes), which no transport or terminal can encode, become `?`. Secrets are not this
    function's job: the caller redacts.
    """
    if html_markup:
        text = html.unescape(_MARKUP.sub(" ", text))
    text = " ".join(_CONTROL.sub(" ", text).split())
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes "?"
