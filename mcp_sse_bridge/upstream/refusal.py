"""A refused handshake as a typed error: what happened, the status, the start of the body.

The body is read for a short, shielded while (`EXCERPT_READ_SECONDS`, at most half the time
left, `EXCERPT_READ_BYTES` at most): a body that trickles must not eat the call's budget and turn
the refusal into an empty batch. The excerpt is one cleaned, printable line; the URL is shown
without its query or user info, which may hold secrets. `Retry-After` is parsed into the error's
`retry_after` for `retry.RetryPolicy`.
"""

from __future__ import annotations

import anyio
import httpx2

from ..errors import AuthError, HTTPStatusError, ProtocolError, ServerError, UpstreamError, excerpt
from ..urls import display_url
from .retry import retry_after

__all__ = [
    "EXCERPT_READ_BYTES",
    "EXCERPT_READ_SECONDS",
    "display_request",
    "read_excerpt",
    "refusal",
]

EXCERPT_READ_BYTES = 64 * 1024
EXCERPT_READ_SECONDS = 1.0

_ADVICE = {  # status -> (what happened, what to do); 400 and 500 stand for their class
    400: (
        "The upstream refused the request",
        "Check the tool's arguments against the upstream API's documentation.",
    ),
    401: (
        "The upstream refused the credentials",
        "Check the manual's auth section and the variables it uses.",
    ),
    403: (
        "The upstream denied access",
        "Check the credentials, and that this account may read this stream.",
    ),
    404: (
        "The upstream has no such stream",
        "Check the tool's URL in the manual and the arguments that fill its path.",
    ),
    429: ("The upstream is rate limiting", "Wait before calling again."),
    500: ("The upstream server failed", "The upstream is failing or restarting; try again later."),
}


async def refusal(response: httpx2.Response) -> UpstreamError:
    """The typed error for a refused handshake, quoting the start of the body."""
    request, status = response.request, response.status_code
    quoted = await read_excerpt(response)
    where = display_request(request.method, request.url)
    said = f" The server said: {quoted}" if quoted else ""
    if status == 200:  # with another Content-Type
        content_type = response.headers.get("content-type") or "(none)"
        return ProtocolError(
            f"The upstream did not answer with an event stream: Content-Type {content_type!r} "
            f"instead of 'text/event-stream' from {where}.{said}",
            status=status,
            body_excerpt=quoted,
            hint="Check that the tool's URL is the SSE endpoint itself, not a web page or API.",
        )
    if 200 < status < 300:
        return ProtocolError(
            f"The upstream answered HTTP {status} from {where}; an event stream comes with status "
            f"200 only.{said}",
            status=status,
            body_excerpt=quoted,
            hint="Check that the tool's URL is the SSE endpoint itself; report the status to the "
            "API's owner.",
        )
    error = AuthError if status in (401, 403) else ServerError if status >= 500 else HTTPStatusError
    what, hint = _ADVICE.get(status) or _ADVICE[500 if status >= 500 else 400]
    if asked := response.headers.get("retry-after"):
        hint += f" (Retry-After: {asked[:40]})"
    status_line = f"HTTP {status} {httpx2.codes.get_reason_phrase(status)}".rstrip()
    return error(
        f"{what}: {status_line} from {where}.{said}",
        status=status,
        body_excerpt=quoted,
        hint=hint,
        retry_after=retry_after(response.headers),
    )


async def read_excerpt(response: httpx2.Response) -> str:
    """The start of an error body as one short, printable line (read at most 64 KiB).

    The read takes at most `EXCERPT_READ_SECONDS` and half of the caller's remaining time, and
    is shielded: should the caller's deadline pass meanwhile, the refusal is still reported
    (with what arrived) rather than lost to the cancellation.
    """
    body = bytearray()
    remaining = anyio.current_effective_deadline() - anyio.current_time()
    with anyio.move_on_after(max(0.0, min(EXCERPT_READ_SECONDS, remaining / 2)), shield=True):
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= EXCERPT_READ_BYTES:
                    break
        except httpx2.HTTPError:
            pass  # a body cut short still says something
    html_page = "html" in response.headers.get("content-type", "").lower()
    return excerpt(body[:EXCERPT_READ_BYTES].decode("utf-8", "replace"), html_markup=html_page)


def display_request(method: str, url: str | httpx2.URL) -> str:
    """Method and URL without the query or user info, which may hold secrets."""
    return f"{method} {display_url(str(url))}"
