"""TLS to the upstream: a private CA trusted through SSL_CERT_FILE verifies the upstream by address
and by name; a refused certificate, https to a plain port, http to a TLS port, or an unusable
SSL_CERT_FILE is one clear line that says what to fix.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import trustme

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.cli import run_cli_without_proxies
from tests.acceptance.network import closed_port, origin, plain_http_port, server_tls
from tests.acceptance.results import batch_of, error_of, ids
from tests.acceptance.upstreams import two_events
from tests.sse_server import serve

pytestmark = pytest.mark.anyio


async def test_https_verifies_against_a_private_ca_trusted_by_ssl_cert_file(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """httpx2's default context reads SSL_CERT_FILE (httpcore2.default_ssl_context): with the
    CA there, the bridge's own TLS connections verify the upstream by address and by name (IPv6
    in the localhost test); without it, or for a certificate naming another host, the call is
    one clear error that says how to trust a private CA, at once rather than at the call's
    deadline. An https URL pointing at a plain-http port is a TLS failure whose advice is the
    port, not the CA; http:// to the TLS port says the server did not answer HTTP."""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    good = server_tls(ca, "127.0.0.1", "localhost")
    elsewhere = server_tls(ca, "upstream.example")
    async with (
        serve(two_events, tls=good) as up,
        serve(two_events, tls=elsewhere) as other,
        plain_http_port() as plain,
    ):
        manual = write_manual(
            tmp_path / "tls.json",
            tool("by_ip", f"{origin(up, 'https')}/s"),
            tool("by_name", f"{origin(up, 'https', 'localhost')}/s"),
            tool("wrong_name", f"{origin(other, 'https')}/s"),
            tool("not_tls", f"https://127.0.0.1:{plain}/s"),
            tool("not_plain", f"{origin(up)}/s"),
        )
        async with stdio_bridge(manual, {"SSL_CERT_FILE": str(cafile)}) as client:
            for name in ("by_ip", "by_name"):
                assert ids(batch_of(await client.call_tool(name, {"max_seconds": 5}))) == ["1", "2"]
            with anyio.fail_after(2):
                refused = await client.call_tool("wrong_name", {"max_seconds": 10})
            error_of(refused, "cannot connect", "https://127.0.0.1", "certificate")
            with anyio.fail_after(2):
                not_tls = await client.call_tool("not_tls", {"max_seconds": 10})
            text = error_of(not_tls, "WRONG_VERSION_NUMBER", "speaks https on that port")
            assert "certificate" not in text  # not the advice for a refused certificate
            not_plain = await client.call_tool("not_plain", {"max_seconds": 10})
            error_of(not_plain, "disconnected without sending a response", "scheme and port")
        async with stdio_bridge(manual) as client:  # the system's CAs only
            with anyio.fail_after(2):
                refused = await client.call_tool("by_ip", {"max_seconds": 10})
            error_of(refused, "CERTIFICATE_VERIFY_FAILED", "SSL_CERT_FILE", "private CA")
        assert len(up.requests) == 2 and not other.requests  # refused before any request


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "not-pem"])
async def test_an_unusable_ssl_cert_file_is_one_clear_line(
    content: str | None, tmp_path: Path
) -> None:
    """SSL_CERT_FILE naming a file that is missing or holds no certificate: `call` and `serve`
    stop with one line naming the variable and the fix (exit 2, a configuration problem),
    instead of a traceback from inside httpx2."""
    cafile = tmp_path / "ca.pem"
    if content is not None:
        cafile.write_text(content)
    manual = write_manual(tmp_path / "m.json", tool("t", f"http://127.0.0.1:{closed_port()}/s"))
    env = {"SSL_CERT_FILE": str(cafile)}
    for argv in (["call", "t", "--manual", str(manual)], ["--manual", str(manual)]):
        done = await run_cli_without_proxies(*argv, env=env)
        stderr = done.stderr.decode()
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert "SSL_CERT_FILE" in stderr and str(cafile) in stderr, stderr
        assert done.stdout == b""
