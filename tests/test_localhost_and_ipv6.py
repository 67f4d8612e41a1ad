"""`localhost` and IPv6 upstreams: by name, by `[::1]` literal, over TLS, and `localhost` to an
upstream on ::1 only exactly when the resolver says so (else a clear connect error, fast).
"""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest
import trustme

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.network import origin, server_tls
from tests.acceptance.results import batch_of, error_of, ids
from tests.acceptance.upstreams import two_events
from tests.sse_server import serve

pytestmark = pytest.mark.anyio


def localhost_addresses() -> set[str]:
    found = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    return {str(address[4][0]) for address in found}


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this machine")
async def test_localhost_and_ipv6_upstreams_are_reached(ca: trustme.CA, tmp_path: Path) -> None:
    """`localhost` reaches an upstream listening on 127.0.0.1 only; `[::1]` reaches one on ::1
    only, over TLS too; and `localhost` to the ::1-only upstream works exactly when this
    machine's resolver gives ::1 for localhost (here /etc/hosts may not), else it is a clear
    connect error, fast."""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    async with (
        serve(two_events) as v4,
        serve(two_events, "::1") as v6,
        serve(two_events, "::1", tls=server_tls(ca, "::1")) as v6_tls,
    ):
        manual = write_manual(
            tmp_path / "lh.json",
            tool("v4_by_name", f"{origin(v4, host='localhost')}/s"),
            tool("v6_literal", f"{origin(v6)}/s"),
            tool("v6_tls", f"{origin(v6_tls, 'https')}/s"),
            tool("v6_by_name", f"{origin(v6, host='localhost')}/s"),
        )
        async with stdio_bridge(manual, {"SSL_CERT_FILE": str(cafile)}) as client:
            for name in ("v4_by_name", "v6_literal", "v6_tls"):
                assert ids(batch_of(await client.call_tool(name, {"max_seconds": 5}))) == ["1", "2"]
            with anyio.fail_after(3):
                by_name = await client.call_tool("v6_by_name", {"max_seconds": 10})
        assert v6.requests and v6.requests[0].headers["host"] == f"[::1]:{v6.port}"
    if "::1" in localhost_addresses():
        assert ids(batch_of(by_name)) == ["1", "2"]
    else:
        error_of(by_name, "cannot connect", f"http://localhost:{v6.port}/s")
