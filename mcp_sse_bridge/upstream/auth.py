"""Credentials for the upstream: api_key, basic, and OAuth2 client credentials with a token cache.

Decisions worth knowing:
- OAuth2 clients authenticate with form fields (`client_secret_post`), as the UTCP reference
  does; when the token endpoint answers that with 400 or 401, the request is retried once with
  HTTP Basic (`client_secret_basic`, which RFC 6749 requires every server to accept). Never both
  in one request: RFC 6749 forbids it and strict servers refuse it.
- `token_url` must be https or loopback, and `--allow-insecure-http` does not relax that: the
  token request carries the long-lived client secret.
- Tokens are cached per (token_url, client_id, scope) until `expires_in` minus a margin (10 %,
  at most 30 s); a token without `expires_in` is kept until a 401 forces a refresh.
- A token request, body included, takes at most the HTTP client's connect timeout (the
  engine's `Limits.connect_timeout`): an endpoint that never answers is an `AuthError` saying
  so, not a call that hangs until its deadline and reports nothing.
- Errors never contain the client secret, even when the token endpoint echoes it back.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import anyio
import httpx2

from ..errors import AuthError, InsecureURLError, ManualError, excerpt
from ..urls import check_url, display_url
from .request import (
    PreparedRequest,
    add_query,
    get_header,
    header_problem,
    set_header,
)

if TYPE_CHECKING:
    from ..manual import ApiKeyAuth, Auth, BasicAuth, OAuth2Auth
    from ..manual.variables import SecretRegistry

_MAX_TOKEN_RESPONSE = 64 * 1024
_TOKEN_TIMEOUT = 10.0  # seconds, for a client configured without a connect timeout
_LINE_BREAK = re.compile(r"[\r\n\x00]")
_FIX_AUTH = "Fix `auth` in the manual, or the variable its value references."


async def apply_auth(
    request: PreparedRequest,
    auth: Auth | None,
    *,
    client: httpx2.AsyncClient,
    tokens: TokenCache,
    force_refresh: bool = False,
    secrets: SecretRegistry | None = None,
) -> PreparedRequest:
    """Return `request` with credentials added; `force_refresh` after a 401 gets a new token.

    `secrets` learns the credentials derived here (the access token, the Basic header's
    base64), which no variable holds, so that an upstream echoing them is redacted too.
    """
    if auth is None:
        return request
    if auth.auth_type == "api_key":
        return _apply_api_key(request, auth)
    if auth.auth_type == "basic":
        credentials = _basic_auth(auth)
    else:
        credentials = "Bearer " + await tokens.token(client, auth, force=force_refresh)
    if secrets is not None:
        secrets.add(credentials.partition(" ")[2])
    return _with_header(request, "Authorization", credentials)


@dataclass
class _Slot:
    """One cache entry; `attempts` lets a waiter see that a fetch finished while it waited."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    token: str | None = None
    expires_at: float = math.inf
    error: AuthError | None = None
    attempts: int = 0


class TokenCache:
    """OAuth2 access tokens per (token_url, client_id, scope), one in-flight request per key."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: dict[tuple[str, str, str | None], _Slot] = {}

    async def token(
        self, client: httpx2.AsyncClient, auth: OAuth2Auth, *, force: bool = False
    ) -> str:
        """A valid access token; `force` replaces the cached one (the upstream refused it)."""
        slot = self._slots.setdefault((auth.token_url, auth.client_id, auth.scope), _Slot())
        if not force and (token := self._fresh(slot)):
            return token
        seen = slot.attempts
        async with slot.lock:
            if slot.attempts != seen:  # another caller fetched while we waited: share its result
                if slot.error:
                    raise slot.error
                if token := self._fresh(slot):
                    return token
            started = self._clock()
            slot.token = None
            try:
                token, lifetime = await _request_token(client, auth)
            except AuthError as err:
                slot.error = err
                raise
            else:
                slot.error = None
                slot.token = token
                slot.expires_at = started + lifetime - min(30.0, lifetime / 10)
                return token
            finally:
                slot.attempts += 1

    def _fresh(self, slot: _Slot) -> str | None:
        return slot.token if slot.token and self._clock() < slot.expires_at else None


async def _request_token(client: httpx2.AsyncClient, auth: OAuth2Auth) -> tuple[str, float]:
    """POST the client-credentials grant; returns the token and its lifetime in seconds."""
    try:
        check_url(auth.token_url, allow_insecure_http=False)
    except InsecureURLError as err:
        raise InsecureURLError(
            f"OAuth2 token_url: {err.message}",
            hint="Use an https:// token_url. The token request carries the client secret, so "
            "plain http is only allowed to loopback, whatever --allow-insecure-http says.",
        ) from None
    form = {"grant_type": "client_credentials"}
    if auth.scope:
        form["scope"] = auth.scope
    credentials = {"client_id": auth.client_id, "client_secret": auth.client_secret}
    status, content_type, body = await _post(client, auth.token_url, form | credentials, {})
    if status in (400, 401):
        basic = {"Authorization": basic_header(auth.client_id, auth.client_secret)}
        status, content_type, body = await _post(client, auth.token_url, form, basic)
    if not 200 <= status < 300:
        excerpt = _excerpt(body, auth)
        raise AuthError(
            f"The OAuth2 token endpoint {display_url(auth.token_url)} answered {status}: {excerpt}",
            status=status,
            body_excerpt=excerpt,
            hint="The token endpoint failed: try again later."
            if status >= 500
            else "Check token_url, client_id, client_secret and scope.",
        )
    return _parse_token(display_url(auth.token_url), content_type, body)


async def _post(
    client: httpx2.AsyncClient, url: str, form: dict[str, str], headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """One token request with a bounded body and time; no redirects, which would carry the
    secret on."""
    body = bytearray()
    seconds = client.timeout.connect or _TOKEN_TIMEOUT
    try:
        with anyio.fail_after(seconds):
            async with client.stream(
                "POST",
                url,
                data=form,
                headers={"Accept": "application/json", **headers},
                follow_redirects=False,
            ) as response:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= _MAX_TOKEN_RESPONSE:
                        break
    except (TimeoutError, httpx2.TimeoutException):
        raise AuthError(
            f"The OAuth2 token endpoint {display_url(url)} did not answer within {seconds:g} s.",
            hint="Check token_url and that the token endpoint is up, then try again.",
        ) from None
    except httpx2.TransportError as err:
        raise AuthError(
            f"Could not get an OAuth2 token from {display_url(url)}: {err or type(err).__name__}.",
            hint="Check token_url and that the token endpoint is up.",
        ) from None
    return response.status_code, response.headers.get("content-type", ""), bytes(body)


def _parse_token(url: str, content_type: str, body: bytes) -> tuple[str, float]:
    """The access token and its lifetime; the body itself is never quoted, as it holds secrets."""
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise AuthError(
            f"The OAuth2 token endpoint {url} did not answer with a JSON object "
            f"(Content-Type {content_type or 'missing'!r}, {len(body)} bytes).",
            hint="Check that token_url points at the token endpoint itself.",
        )
    token = payload.get("access_token")
    if not isinstance(token, str) or not token or header_problem("Authorization", token):
        raise AuthError(
            f"The OAuth2 token endpoint {url} answered without a usable access_token "
            f"(keys: {', '.join(sorted(map(str, payload))) or 'none'}).",
            hint="Check that token_url is a client-credentials token endpoint.",
        )
    return token, _lifetime(payload.get("expires_in"))


def _lifetime(expires_in: Any) -> float:
    """Seconds from `expires_in` (number or numeric string); unknown means until refused."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return math.inf
    return seconds if 0 <= seconds < math.inf else math.inf


def _excerpt(body: bytes, auth: OAuth2Auth) -> str:
    """A short one-line excerpt of an error body with every form of the secret masked."""
    text = body.decode("utf-8", "replace")
    if secret := auth.client_secret:
        basic = basic_header(auth.client_id, secret).removeprefix("Basic ")
        forms = {secret, quote_plus(secret), quote(secret, safe=""), basic}
        for form in sorted(forms, key=len, reverse=True):  # longest first: no partial leftovers
            text = text.replace(form, "***")
    return excerpt(text)


def _apply_api_key(request: PreparedRequest, auth: ApiKeyAuth) -> PreparedRequest:
    name, value = auth.var_name, auth.api_key
    _refuse_line_breaks("api_key", {"var_name": name, "api_key": value})
    if auth.location == "query":
        return replace(request, url=add_query(request.url, [(name, value)]))
    if auth.location == "cookie":
        if ";" in value or header_problem(name, value):
            raise ManualError(
                f"The api_key auth cannot be sent as the cookie {name!r}: the name must be an "
                "HTTP token and the value printable ASCII without ';' or line breaks.",
                hint=_FIX_AUTH,
            )
        cookie = f"{name}={value}"
        if existing := get_header(request.headers, "Cookie"):
            cookie = f"{existing}; {cookie}"
        return _with_header(request, "Cookie", cookie)
    if problem := header_problem(name, value):
        raise ManualError(
            f"The api_key auth cannot be sent as the header {name!r}: {problem}.", hint=_FIX_AUTH
        )
    return _with_header(request, name, value)


def _basic_auth(auth: BasicAuth) -> str:
    _refuse_line_breaks("basic", {"username": auth.username, "password": auth.password})
    if ":" in auth.username:
        raise ManualError(
            "The basic auth username contains ':', which HTTP Basic cannot carry (RFC 7617).",
            hint=_FIX_AUTH,
        )
    return basic_header(auth.username, auth.password)


def _refuse_line_breaks(kind: str, fields: dict[str, str]) -> None:
    """A CR or LF in a credential is a mistake (often a Windows .env file), or an injection."""
    for name, value in fields.items():
        if _LINE_BREAK.search(value):
            raise ManualError(
                f"The {kind} auth's `{name}` contains a line break or NUL character.",
                hint=_FIX_AUTH + " A stray CR often comes from a .env file with CRLF line ends.",
            )


def basic_header(user: str, password: str) -> str:
    """The `Authorization` (or `Proxy-Authorization`) value for HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _with_header(request: PreparedRequest, name: str, value: str) -> PreparedRequest:
    headers = dict(request.headers)
    set_header(headers, name, value)
    return replace(request, headers=headers)
