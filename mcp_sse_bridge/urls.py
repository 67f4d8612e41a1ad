"""Where a call may go: https anywhere, plain http only to loopback.

The rule is checked on the resolved URL of every call, every redirect and every OAuth2 token
endpoint. A host counts as loopback when urllib and httpx2 read the same host from the URL and it
is `localhost` or an address in 127.0.0.0/8 or ::1 (also as ::ffff:127.x), so that no parser
differential (`http://127.0.0.1.evil.com`, `http://localhost@evil.com`, `http://0x7f.1`) slips
through. `--allow-insecure-http` lifts the rule, except for credentials in the URL
(`user:pass@`), which are never sent in the clear to another host.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx2

from .errors import InsecureURLError


def check_url(url: str, *, allow_insecure_http: bool) -> None:
    """Refuse URLs that would expose the call: https anywhere, plain http only to loopback."""
    try:
        parts = urlsplit(url)
        client_host = httpx2.URL(url).host.lower()  # where the HTTP client would connect
    except (ValueError, httpx2.InvalidURL) as err:
        raise InsecureURLError(
            f"Refusing a URL that cannot be parsed: {err}.", hint="Fix the URL in the manual."
        ) from None
    shown = display_url(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise InsecureURLError(
            f"Refusing URL {shown!r}: only http(s) URLs with a host are supported.",
            hint="Use an https:// URL.",
        )
    # Loopback only when urllib and the client agree on the host (no parser differential).
    if parts.scheme == "https" or (is_loopback(host) and client_host == host):
        return
    if parts.username is not None or parts.password is not None:
        raise InsecureURLError(
            f"Refusing plain-http URL {shown!r}: it carries credentials (user:password@) "
            "that would travel unencrypted.",
            hint="Use https://, and move the credentials to the manual's `auth` (basic).",
        )
    if not allow_insecure_http:
        raise InsecureURLError(
            f"Refusing plain-http URL {shown!r}: http is only allowed to loopback hosts "
            "(127.0.0.0/8, ::1, localhost).",
            hint="Use https://, or start the bridge with --allow-insecure-http if you trust "
            "the network to this host.",
        )


def display_url(url: str) -> str:
    """The URL for messages: no userinfo and no query, where credentials tend to live."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def is_loopback(host: str) -> bool:
    """Literal loopback addresses and the name `localhost`; anything else (0x7f.1) is not."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback
