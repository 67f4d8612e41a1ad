"""Where the bridge's secrets are masked: a call's errors, and the HTTP client's log lines.

While a bridge is open, the HTTP client's loggers mask its secrets: httpx2 logs every request
URL at INFO ("HTTP Request: GET https://...?api_key=...") and httpcore2 the response headers at
DEBUG, which a library user's logging setup would otherwise print as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import BridgeError, UpstreamError
from ..manual import Auth
from ..manual.variables import SecretRegistry, Variables, needs_substitution

if TYPE_CHECKING:
    from .bridge import BridgeTool

# Loggers that print request URLs (httpx2, INFO) or response headers (httpcore2, DEBUG).
HTTP_LOGGERS = (
    "httpx2",
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
)


class RedactingFilter(logging.Filter):
    """Masks the bridge's secrets in a log record, whatever handler prints it later."""

    def __init__(self, secrets: SecretRegistry) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._secrets.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def known_secrets(tools: Iterable[BridgeTool], variables: Variables) -> list[str]:
    """Every value the bridge could send as a variable or a credential written in a manual:
    redacted from every call's output and from the HTTP client's log lines."""
    values = list(variables.explicit.values())
    for tool in tools:
        literal = auth_secrets(tool.spec.template.auth)
        values.extend(value for value in literal if not needs_substitution(value))
        for var in variables.referenced(tool.spec):
            if (value := variables.lookup(tool.manual, var)) is not None:
                values.append(value)
    return values


def auth_secrets(auth: Auth | None) -> list[str]:
    """Credentials written literally in a manual are secrets too, not only `${VAR}` values."""
    if auth is None:
        return []
    if auth.auth_type == "api_key":
        return [auth.api_key]
    if auth.auth_type == "basic":
        return [auth.password]
    return [auth.client_secret]


def redacted(exc: BridgeError, secrets: SecretRegistry) -> BridgeError:
    """`exc` with every secret masked; the chain is dropped by the caller (it may hold URLs)."""
    exc.message = secrets.redact(exc.message)
    exc.args = (exc.message,)
    if exc.hint is not None:
        exc.hint = secrets.redact(exc.hint)
    if isinstance(exc, UpstreamError):
        exc.body_excerpt = secrets.redact(exc.body_excerpt)
    return exc
