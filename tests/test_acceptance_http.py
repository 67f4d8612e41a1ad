"""Third acceptance pass: the bridge's HTTP path from the outside.

Today's change put a network backend of our own under httpcore2 (network.py), gave every stream
a connection of its own (transport.StreamTransport) and made streams skip
`httpx2.AsyncClient.send` unless a proxy is set (transport.StreamClient). These tests run the
real command (`python -m mcp_sse_bridge --manual X`, driven by the MCP SDK's stdio client, and
`mcp-sse-bridge call`) against real loopback upstreams over what that path has to get right:
TLS trusted through SSL_CERT_FILE, forward proxies and CONNECT tunnels from the environment,
compressed bodies, `localhost` and IPv6, OAuth2 tokens through the client, redirects,
reconnects, statuses, POST bodies, sockets and memory over many calls, progress, and logs.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

import anyio
import mcp
import mcp_types as types
import pytest
import trustme
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.dispatcher import ProgressFnT

from tests.acceptance.bridges import CLI, tool, write_manual
from tests.acceptance.network import (
    Compressor,
    child_pid,
    forward_proxy,
    open_fds,
    origin,
    plain_http_port,
    rss_kib,
    sockets,
)
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio

SECRET = "sk-accept3-5d2c9e71b0"
CLIENT_SECRET = "cs-accept3-90ab77e1f3"
MARGIN = 0.75  # seconds a call may run past its max_seconds on this shared 2-core machine


# -- the bridge as a host runs it -------------------------------------------------------------


@contextlib.asynccontextmanager
async def bridge(
    manual: Path, env: dict[str, str] | None = None, *flags: str, errlog: IO[str] | None = None
) -> AsyncIterator[mcp.Client]:
    """The bridge process serving `manual` over stdio, with the SDK's default environment
    (PATH, HOME, ...: no proxy and no SSL_CERT_FILE unless `env` sets them)."""
    command = [*CLI[1:], "--manual", str(manual), *flags]
    params = StdioServerParameters(command=CLI[0], args=command, env=env or {})
    transport = stdio_client(params) if errlog is None else stdio_client(params, errlog=errlog)
    with anyio.fail_after(40):
        async with mcp.Client(transport, mode="legacy") as client:
            yield client


async def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`mcp-sse-bridge ARGV` with this process's environment, without its proxy settings (the
    upstreams are on loopback), plus `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environment.update(env or {})
    with anyio.fail_after(30):
        return await anyio.run_process(
            [*CLI, *argv], env=environment, check=False, stdin=subprocess.DEVNULL
        )


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def batch_of(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


def error_of(result: types.CallToolResult, *words: str) -> str:
    """The text of an error result, checked: one line, naming `words`, no secret, no trace."""
    text = text_of(result)
    assert result.is_error, text
    assert "\n" not in text and "Traceback" not in text and "Internal error" not in text, text
    assert ".." not in text, text  # no sentence ends twice
    assert SECRET not in text and CLIENT_SECRET not in text, text
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in {text!r}"
    return text


def ids(batch: dict[str, Any]) -> list[str]:
    return [event["id"] for event in batch["events"]]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def events(response: Response, *numbers: int) -> None:
    """Events with ids and data {"n": n}, in one chunk."""
    await response.send(sse_lines(*({"id": str(n), "data": {"n": n}} for n in numbers)))


# == TLS: a private CA trusted through SSL_CERT_FILE =========================================


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


async def two_events(request: Request, response: Response) -> None:
    await events(response, 1, 2)
    await response.finish()


async def test_https_with_a_private_ca_trusted_by_ssl_cert_file(
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
        async with bridge(manual, {"SSL_CERT_FILE": str(cafile)}) as client:
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
        async with bridge(manual) as client:  # the system's CAs only
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
        done = await run_cli(*argv, env=env)
        stderr = done.stderr.decode()
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert "SSL_CERT_FILE" in stderr and str(cafile) in stderr, stderr
        assert done.stdout == b""


# == Proxies from the environment ===========================================================


class Resuming:
    """Ticks 1..6 honouring Last-Event-ID, with `retry: 100`; the first connection drops after
    two."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []

    async def __call__(self, request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 100\n\n")
        await events(response, *range(start, start + 2 if last is None else 7))
        if last is None:
            await response.abort()
        else:
            await response.finish()


class Proxied:
    """/resume resumes (see `Resuming`), /token issues OAuth2 tokens, /post echoes its body
    and headers as one event, /held sends three events and waits for the client to go (`gone`
    is set then), anything else sends two events."""

    def __init__(self) -> None:
        self.resuming = Resuming()
        self.gone = anyio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        if request.path == "/held":
            await events(response, 1, 2, 3)
            await wait_disconnect(response)
            self.gone.set()
        elif request.path == "/resume":
            await self.resuming(request, response)
        elif request.path == "/token":
            body = json.dumps({"access_token": "tok-proxied", "expires_in": 3600})
            await response.simple(200, body, "application/json")
        elif request.path == "/post":
            data = {"body": request.json(), "trace": request.headers.get("x-trace")}
            await response.send(sse_lines({"id": "p", "data": data}))
            await response.finish()
        else:
            await two_events(request, response)


async def test_proxies_from_the_environment(ca: trustme.CA, tmp_path: Path) -> None:
    """HTTP_PROXY / HTTPS_PROXY / NO_PROXY as httpx2 reads them: plain http goes to the proxy
    in absolute form, https through a CONNECT tunnel (TLS still verified end to end), a
    NO_PROXY host straight to the upstream; reconnects, POST bodies and OAuth2 token requests
    take the proxy too; a stream the bridge stops at max_events through the proxy's pool is
    closed upstream. (The https variable is given in lower case, which httpx2 reads too.)"""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    upstream = Proxied()
    async with (
        serve(upstream) as up,
        serve(two_events, tls=server_tls(ca, "127.0.0.1")) as secure,
        forward_proxy() as proxy,
    ):
        base = origin(up)
        oauth = {
            "auth_type": "oauth2",
            "token_url": f"{base}/token",
            "client_id": "proxied",
            "client_secret": CLIENT_SECRET,
        }
        body_inputs = {
            "type": "object",
            "properties": {"query": {"type": "object"}, "X-Trace": {"type": "string"}},
        }
        manual = write_manual(
            tmp_path / "proxied.json",
            tool("via", f"{base}/via?x=1"),
            tool("direct", f"{origin(up, host='localhost')}/direct"),
            tool("tunnel", f"{origin(secure, 'https')}/tls"),
            tool("resume", f"{base}/resume"),
            tool(
                "post", f"{base}/post", body_inputs, body_field="query", header_fields=["X-Trace"]
            ),
            tool("oauth", f"{base}/oauth", auth=oauth),
            tool("held", f"{base}/held"),
        )
        env = {
            "HTTP_PROXY": proxy.url,
            "https_proxy": proxy.url,
            "NO_PROXY": "localhost",
            "SSL_CERT_FILE": str(cafile),
        }
        async with bridge(manual, env) as client:
            for name in ("via", "direct", "tunnel", "oauth"):
                assert ids(batch_of(await client.call_tool(name, {"max_seconds": 5}))) == ["1", "2"]
            resumed = batch_of(await client.call_tool("resume", {"max_seconds": 5}))
            posted = batch_of(
                await client.call_tool("post", {"query": {"q": "é", "n": [1]}, "X-Trace": "t-1"})
            )
            held = batch_of(await client.call_tool("held", {"max_events": 2}))
            with anyio.fail_after(2):
                await upstream.gone.wait()  # while the bridge (and its proxy pool) is still up
    assert ids(resumed) == ["1", "2", "3", "4", "5", "6"] and resumed["reconnects"] == 1
    assert upstream.resuming.last_ids == [None, "2"]
    assert posted["events"][0]["data"] == {"body": {"q": "é", "n": [1]}, "trace": "t-1"}
    assert proxy.seen == [
        ("GET", f"{base}/via?x=1"),
        ("CONNECT", f"127.0.0.1:{secure.port}"),
        ("POST", f"{base}/token"),
        ("GET", f"{base}/oauth"),
        ("GET", f"{base}/resume"),
        ("GET", f"{base}/resume"),
        ("POST", f"{base}/post"),
        ("GET", f"{base}/held"),
    ]
    assert ids(held) == ["1", "2"] and held["stop_reason"] == "max_events"
    assert [r.path for r in up.requests].count("/direct") == 1  # there, but not via the proxy
    oauth_request = next(r for r in up.requests if r.path == "/oauth")
    assert oauth_request.headers["authorization"] == "Bearer tok-proxied"


async def test_url_credentials_are_basic_auth_with_and_without_a_proxy(tmp_path: Path) -> None:
    """`http://user:password@host/...` is sent as HTTP Basic auth, as httpx2.AsyncClient does:
    on the direct route (which skips the client's auth layer) as on a proxy route. Before the
    fix the direct route dropped the credentials, so a call failed with 401 unless a proxy was
    set."""
    expected = "Basic " + base64.b64encode(f"feed-user:{SECRET}".encode()).decode()
    authorizations: list[str | None] = []

    async def basic_only(request: Request, response: Response) -> None:
        authorizations.append(request.headers.get("authorization"))
        if authorizations[-1] != expected:
            await response.simple(401, "who are you?", headers={"WWW-Authenticate": "Basic"})
            return
        await two_events(request, response)

    async with serve(basic_only) as up, forward_proxy() as proxy:
        url = f"http://feed-user:${{URL_PASSWORD}}@127.0.0.1:{up.port}/s"
        manual = write_manual(tmp_path / "userinfo.json", tool("feed", url))
        for env in ({}, {"HTTP_PROXY": proxy.url}):
            async with bridge(manual, {"URL_PASSWORD": SECRET, **env}) as client:
                result = await client.call_tool("feed", {"max_seconds": 5})
                assert ids(batch_of(result)) == ["1", "2"] and SECRET not in text_of(result)
    assert authorizations == [expected, expected]
    assert [method for method, _ in proxy.seen] == ["GET"]  # the second bridge's call


async def test_a_proxy_httpx2_cannot_use_fails_each_call_it_would_carry(tmp_path: Path) -> None:
    """ALL_PROXY=socks5://... (socksio is not installed) and a proxy of an unknown scheme used
    to stop the bridge at start with a traceback. Now the bridge starts, NO_PROXY hosts work,
    and each call that would take the proxy is one clear error naming it (never going around
    it: the user asked for that proxy)."""
    async with serve(two_events) as up:
        manual = write_manual(
            tmp_path / "p.json",
            tool("proxied", f"{origin(up)}/s"),
            tool("direct", f"{origin(up, host='localhost')}/s"),
        )
        for env, words in (
            (
                {"ALL_PROXY": "socks5://127.0.0.1:1080"},
                ["socks5://127.0.0.1:1080", "ALL_PROXY", "pip install socksio"],
            ),
            (
                {"HTTP_PROXY": "ftp://user:pw@127.0.0.1:21"},
                ["ftp://127.0.0.1:21", "HTTP_PROXY", "only http://"],
            ),
        ):
            async with bridge(manual, {**env, "NO_PROXY": "localhost"}) as client:
                text = error_of(await client.call_tool("proxied", {"max_seconds": 5}), *words)
                direct = batch_of(await client.call_tool("direct", {"max_seconds": 5}))
            assert "user:pw" not in text and ids(direct) == ["1", "2"]
    assert [r.path for r in up.requests] == ["/s", "/s"]


# == Content-Encoding ========================================================================


class Compressed:
    """/<encoding>/<shape>: six events in `encoding` (gzip, deflate, raw-deflate), flushed one
    by one. Shapes: `whole`; `cut` drops the connection halfway through the fourth event's
    compressed bytes on the first connection and resumes after Last-Event-ID; `truncated` ends
    the chunked body cleanly in the middle of the compressed stream; `corrupt` sends bytes
    that are not the encoding; `refused` is a 503 whose compressed body explains."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []

    async def __call__(self, request: Request, response: Response) -> None:
        _, encoding, shape = request.path.split("/")
        header = {"Content-Encoding": "gzip" if encoding == "gzip" else "deflate"}
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        packer = Compressor(encoding)
        if shape == "refused":
            body = packer.piece("maintenance until 12:00") + packer.end()
            await response.simple(503, body, headers=header)
            return
        await response.head(200, header)
        if shape == "corrupt":
            await response.send(b"\x1f\x8b\x08\x00garbage, not deflate" * 4)
            await response.finish()
            return
        start = int(last) + 1 if last else 1
        await response.send(packer.piece("retry: 100\n\n"))
        for n in range(start, 7):
            piece = packer.piece(sse_lines({"id": str(n), "data": {"n": n}}))
            if n == 4 and last is None and shape in ("cut", "truncated"):
                await response.send(piece[: len(piece) // 2])
                if shape == "cut":
                    await response.abort()
                else:
                    await response.finish()
                return
            await response.send(piece)
        await response.send(packer.end())
        await response.finish()


async def test_compressed_event_streams(tmp_path: Path) -> None:
    """gzip and deflate (zlib-wrapped and raw) are decoded as they arrive; a gzip stream cut
    mid-event reconnects with the last whole event's id and loses or repeats nothing; one that
    ends cleanly mid-stream keeps the whole events; garbage is a clear protocol error; and a
    refusal's compressed body is quoted decoded."""
    upstream = Compressed()
    async with serve(upstream) as up:
        shapes = [
            ("gzip", "whole"),
            ("deflate", "whole"),
            ("raw-deflate", "whole"),
            ("gzip", "cut"),
            ("deflate", "cut"),
            ("gzip", "truncated"),
            ("gzip", "corrupt"),
            ("gzip", "refused"),
        ]
        tools = [tool(f"{e}_{s}".replace("-", "_"), f"{origin(up)}/{e}/{s}") for e, s in shapes]
        manual = write_manual(tmp_path / "gz.json", *tools)
        async with bridge(manual) as client:
            results = {
                t["name"]: await client.call_tool(t["name"], {"max_seconds": 5}) for t in tools
            }
    every = ["1", "2", "3", "4", "5", "6"]
    for name in ("gzip_whole", "deflate_whole", "raw_deflate_whole"):
        batch = batch_of(results[name])
        assert ids(batch) == every and batch["stop_reason"] == "closed", name
        assert batch["events"][5]["data"] == {"n": 6}
    for name in ("gzip_cut", "deflate_cut"):
        batch = batch_of(results[name])
        assert ids(batch) == every and batch["reconnects"] == 1, name
    truncated = batch_of(results["gzip_truncated"])
    assert ids(truncated) == ["1", "2", "3"] and truncated["stop_reason"] == "closed"
    error_of(results["gzip_corrupt"], "could not be decoded", "Content-Encoding")
    error_of(results["gzip_refused"], "503", "maintenance until 12:00")
    assert upstream.last_ids.count("3") == 2  # each cut stream resumed after event 3


# == localhost and IPv6 ======================================================================


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
async def test_localhost_and_ipv6_upstreams(ca: trustme.CA, tmp_path: Path) -> None:
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
        async with bridge(manual, {"SSL_CERT_FILE": str(cafile)}) as client:
            for name in ("v4_by_name", "v6_literal", "v6_tls"):
                assert ids(batch_of(await client.call_tool(name, {"max_seconds": 5}))) == ["1", "2"]
            with anyio.fail_after(3):
                by_name = await client.call_tool("v6_by_name", {"max_seconds": 10})
        assert v6.requests and v6.requests[0].headers["host"] == f"[::1]:{v6.port}"
    if "::1" in localhost_addresses():
        assert ids(batch_of(by_name)) == ["1", "2"]
    else:
        error_of(by_name, "cannot connect", f"http://localhost:{v6.port}/s")


# == OAuth2 client credentials ===============================================================


class OAuthServer:
    """/token issues tok-1, tok-2, ... (the secret echoed in a field nobody should show);
    /slow-token never answers; /s streams for a token that was issued and is not revoked,
    and answers 401 otherwise."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.bearers: list[str] = []

    async def __call__(self, request: Request, response: Response) -> None:
        if request.path == "/token":
            form = dict(parse_qsl(request.body.decode()))
            if form.get("client_secret") != CLIENT_SECRET or form.get("client_id") != "acc3":
                await response.simple(401, '{"error": "invalid_client"}', "application/json")
                return
            self.issued.append(f"tok-{len(self.issued) + 1}")
            token = {"access_token": self.issued[-1], "expires_in": 3600, "echo": CLIENT_SECRET}
            await response.simple(200, json.dumps(token), "application/json")
        elif request.path == "/slow-token":
            await wait_disconnect(response)
        else:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.bearers.append(bearer)
            if bearer not in self.issued or bearer in self.revoked:
                await response.simple(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
                return
            await events(response, 1, 2)
            await response.finish()


async def test_oauth2_tokens_through_the_client(tmp_path: Path) -> None:
    """The token request goes through httpx2.AsyncClient over StreamTransport: fetched once and
    cached across calls, refreshed once on a 401 and the call retried with the new token; a
    token endpoint that never answers is an error by the call's max_seconds, one that is down
    an error at once, and neither the client secret nor the token shows anywhere."""
    server = OAuthServer()
    async with serve(server) as up:
        base = origin(up)

        def oauth(token_url: str) -> dict[str, str]:
            return {
                "auth_type": "oauth2",
                "token_url": token_url,
                "client_id": "acc3",
                "client_secret": "${CLIENT_SECRET}",
            }

        manual = write_manual(
            tmp_path / "oauth.json",
            tool("feed", f"{base}/s", auth=oauth(f"{base}/token")),
            tool("slow", f"{base}/s", auth=oauth(f"{base}/slow-token")),
            tool("down", f"{base}/s", auth=oauth(f"http://127.0.0.1:{closed_port()}/token")),
        )
        async with bridge(manual, {"CLIENT_SECRET": CLIENT_SECRET}) as client:
            cached = [batch_of(await client.call_tool("feed", {})) for _ in range(3)]
            assert server.issued == ["tok-1"] and server.bearers == ["tok-1"] * 3
            server.revoked.add("tok-1")
            refreshed = batch_of(await client.call_tool("feed", {}))
            again = batch_of(await client.call_tool("feed", {}))
            start = anyio.current_time()
            slow = await client.call_tool("slow", {"max_seconds": 1.5})
            slow_took = anyio.current_time() - start
            start = anyio.current_time()
            down = await client.call_tool("down", {"max_seconds": 10})
            down_took = anyio.current_time() - start
    assert all(ids(batch) == ["1", "2"] for batch in [*cached, refreshed, again])
    assert server.issued == ["tok-1", "tok-2"]
    assert server.bearers == ["tok-1"] * 3 + ["tok-1", "tok-2", "tok-2"]
    error_of(slow, "no response", "1.5 s", "token endpoint")
    assert 1.5 <= slow_took <= 1.5 + MARGIN
    error_of(down, "OAuth2 token", "/token")
    assert down_took < 2
    for result in (slow, down):
        assert "tok-" not in text_of(result)


# == Redirects, reconnects, retry, statuses ==================================================


class Redirecting:
    """/r/<status> redirects to /final with a relative Location (an absolute path for 301 and
    307, `../final` for 302) or an absolute same-origin URL (308); /away redirects to another origin
    (localhost instead of 127.0.0.1); /final echoes the method, body and key it got."""

    def __init__(self) -> None:
        self.port = 0

    async def __call__(self, request: Request, response: Response) -> None:
        parts = request.path.strip("/").split("/")
        if parts[0] == "r":
            status = int(parts[1])
            location = {
                301: "/final?via=301",
                302: "../final?via=302",
                307: "/final?via=307",
                308: f"http://127.0.0.1:{self.port}/final?via=308",
            }[status]
            await response.simple(status, "moved", headers={"Location": location})
        elif parts[0] == "away":
            location = f"http://localhost:{self.port}/final"
            await response.simple(302, "moved", headers={"Location": location})
        else:
            data = {
                "method": request.method,
                "via": dict(request.query).get("via"),
                "key": request.headers.get("x-api-key") == SECRET,
                "body": request.body.decode(),
            }
            await response.send(sse_lines({"id": "f", "data": data}))
            await response.finish()


async def test_same_origin_redirects_and_no_other(tmp_path: Path) -> None:
    """301/302/307/308 with relative and absolute same-origin Locations are followed by hand
    (the direct path skips AsyncClient's redirect layer) with the key kept; a 307 re-sends a
    POST body, a 302 turns a POST into a GET; a redirect to another origin is refused."""
    upstream = Redirecting()
    async with serve(upstream) as up:
        upstream.port = up.port
        base = origin(up)
        key = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
        body = {"type": "object", "properties": {"q": {"type": "object"}}}
        tools = [tool(f"r{s}", f"{base}/r/{s}", auth=key) for s in (301, 302, 307, 308)]
        tools += [
            tool("post307", f"{base}/r/307", body, body_field="q", auth=key),
            tool("post302", f"{base}/r/302", body, body_field="q", auth=key),
            tool("away", f"{base}/away", auth=key),
        ]
        manual = write_manual(tmp_path / "redirects.json", *tools)
        async with bridge(manual, {"API_KEY": SECRET}) as client:
            got = {}
            for name in ("r301", "r302", "r307", "r308"):
                got[name] = batch_of(await client.call_tool(name, {}))["events"][0]["data"]
            for name in ("post307", "post302"):
                result = await client.call_tool(name, {"q": {"a": 1}})
                got[name] = batch_of(result)["events"][0]["data"]
            away = await client.call_tool("away", {})
    for status in (301, 302, 307, 308):
        assert got[f"r{status}"] == {"method": "GET", "via": str(status), "key": True, "body": ""}
    assert got["post307"] == {"method": "POST", "via": "307", "key": True, "body": '{"a":1}'}
    assert got["post302"] == {"method": "GET", "via": "302", "key": True, "body": ""}
    error_of(away, "another origin", "302", "not followed")
    assert not any(r.path == "/final" and "via" not in r.target for r in up.requests)


class Dropping:
    """Ticks honouring Last-Event-ID, with `retry: 200`, two per connection then a drop; the
    connection times are kept to check the waits between them."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []
        self.times: list[float] = []

    async def __call__(self, request: Request, response: Response) -> None:
        self.times.append(anyio.current_time())
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 200\n\n")
        await events(response, start, start + 1)
        await response.abort()


class Statuses:
    """/<status>: that status with a body in one of the ways servers send them."""

    async def __call__(self, request: Request, response: Response) -> None:
        name = request.path.strip("/")
        if name == "204":
            await response.simple(204, "")
        elif name == "401":
            await response.simple(401, f"bad key {SECRET}", headers={"WWW-Authenticate": "x"})
        elif name == "404":  # chunked
            await response.head(404, content_type="application/json")
            await response.send('{"error": "no such stream"}')
            await response.finish()
        elif name == "429":
            await response.simple(429, "slow down", headers={"Retry-After": "7"})
        elif name == "500":  # an HTML page, no length: the body ends with the connection
            await response.head(500, content_type="text/html", chunked=False)
            await response.raw(b"<html><body><h1>Internal failure</h1></body></html>")
            await response.abort()
        elif name == "200-html":
            await response.simple(200, "<p>a page</p>", "text/html")
        elif name == "long-retry":  # one event, a retry of an hour, a drop
            await response.send("retry: 3600000\n\n" + sse_lines({"id": "1", "data": "x"}))
            await response.abort()
        elif name == "until-close":  # no length, not chunked: the stream ends with the connection
            await response.head(200, chunked=False)
            await response.raw(
                sse_lines({"id": "1", "data": "a"}, {"id": "2", "data": "b"}).encode()
            )
            await response.abort()
        elif name == "then-204":
            if request.headers.get("last-event-id"):
                await response.simple(204, "")
                return
            await response.send("retry: 100\n\n")
            await events(response, 1)
            await response.abort()


async def test_reconnects_retry_and_statuses(tmp_path: Path) -> None:
    """Drops reconnect with Last-Event-ID after the server's `retry:` (200 ms, +-20 %, not
    the default 30 s), nothing lost or repeated; an hour's `retry:` cannot outlive the call's
    max_seconds; 204 stops, at the first connection and at a reconnect; refusals quote their
    bodies however they are framed, with the secret masked; a stream delimited by the
    connection's close ends as `closed`."""
    dropping = Dropping()
    async with serve(dropping) as drops, serve(Statuses()) as st:
        key = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
        names = ["204", "401", "404", "429", "500", "200-html", "long-retry", "then-204"]
        names.append("until-close")
        manual = write_manual(
            tmp_path / "statuses.json",
            tool("drops", f"{origin(drops)}/s"),
            *(tool(f"s{n}".replace("-", "_"), f"{origin(st)}/{n}", auth=key) for n in names),
        )
        async with bridge(manual, {"API_KEY": SECRET}) as client:
            resumed = batch_of(await client.call_tool("drops", {"max_events": 6}))
            start = anyio.current_time()
            long_retry = batch_of(await client.call_tool("slong_retry", {"max_seconds": 1}))
            long_took = anyio.current_time() - start
            got = {
                name: await client.call_tool(f"s{name}".replace("-", "_"), {"max_seconds": 5})
                for name in names
                if name != "long-retry"
            }
    assert ids(resumed) == ["1", "2", "3", "4", "5", "6"] and resumed["reconnects"] == 2
    assert dropping.last_ids == [None, "2", "4"]
    waits = [later - earlier for earlier, later in itertools.pairwise(dropping.times)]
    assert all(0.15 <= wait <= 0.24 + MARGIN for wait in waits), waits
    assert long_retry["count"] == 1 and long_retry["stop_reason"] == "max_seconds"
    assert long_took <= 1 + MARGIN
    stopped = batch_of(got["204"])
    assert stopped["count"] == 0 and stopped["stop_reason"] == "closed"
    then_204 = batch_of(got["then-204"])
    assert ids(then_204) == ["1"] and then_204["stop_reason"] == "closed"
    assert then_204["reconnects"] == 1
    error_of(got["401"], "401", "refused the credentials", "bad key ***")
    error_of(got["404"], "404", "no such stream")
    error_of(got["429"], "429", "slow down", "Retry-After: 7")
    error_of(got["500"], "500", "Internal failure")
    assert "<h1>" not in text_of(got["500"])
    error_of(got["200-html"], "text/html", "a page")
    until_close = batch_of(got["until-close"])  # an HTTP/1.0-style body: its end is clean
    assert ids(until_close) == ["1", "2"] and until_close["stop_reason"] == "closed"


# == POST with body_field and header_fields =================================================


async def test_post_with_a_json_body_and_header_fields(tmp_path: Path) -> None:
    """body_field (a JSON object) makes a POST with a JSON body and Content-Length; each
    header_fields argument is a header; the rest is the query; the stream headers are there;
    a dropped POST stream is not re-sent."""
    seen: list[Request] = []

    async def echo(request: Request, response: Response) -> None:
        seen.append(request)
        await response.send(sse_lines({"id": "1", "data": request.json()}))
        if request.path == "/drop":
            await response.abort()
        else:
            await response.finish()

    inputs = {
        "type": "object",
        "properties": {
            "job": {"type": "object"},
            "X-Request-Id": {"type": "string"},
            "X-Tenant": {"type": "string"},
            "verbose": {"type": "boolean"},
        },
    }
    template = {"body_field": "job", "header_fields": ["X-Request-Id", "X-Tenant"]}
    async with serve(echo) as up:
        manual = write_manual(
            tmp_path / "post.json",
            tool("submit", f"{origin(up)}/jobs", inputs, **template),
            tool("drop", f"{origin(up)}/drop", inputs, **template),
        )
        job = {"name": "rebuild ☃", "steps": [1, 2, {"deep": None}], "ok": True}
        arguments = {"job": job, "X-Request-Id": "r-42", "X-Tenant": "acme", "verbose": True}
        async with bridge(manual) as client:
            posted = batch_of(await client.call_tool("submit", arguments))
            dropped = await client.call_tool("drop", {**arguments, "max_seconds": 5})
    request = seen[0]
    assert request.method == "POST" and request.target == "/jobs?verbose=true"
    assert request.json() == job and posted["events"][0]["data"] == job
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(request.body))
    assert request.headers["x-request-id"] == "r-42" and request.headers["x-tenant"] == "acme"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["user-agent"].startswith("mcp-sse-bridge/")
    batch = batch_of(dropped)  # the event that came, and why the stream was not resumed
    assert batch["stop_reason"] == "error" and "request had a body" in batch["error"]
    assert [r.path for r in seen] == ["/jobs", "/drop"]


# == Many calls: sockets and memory ==========================================================


class Mixed:
    """What 200 calls meet: clean ends, streams the bridge cuts at max_events, refusals and
    redirects."""

    async def __call__(self, request: Request, response: Response) -> None:
        name = request.path.strip("/")
        if name == "clean":
            await events(response, 1, 2)
            await response.finish()
        elif name == "held":
            await events(response, 1, 2, 3)
            await wait_disconnect(response)
        elif name == "refused":
            await response.simple(503, "busy")
        else:
            await response.simple(302, "", headers={"Location": "/clean"})


async def test_two_hundred_calls_leak_no_socket_and_no_memory(tmp_path: Path) -> None:
    """200 sequential calls through one bridge process (clean ends, cut streams, refusals,
    redirects): afterwards its descriptors are as before (every connection closed, on both
    ends), and its resident memory grows by no more than noise."""
    async with serve(Mixed()) as up:
        names = ["clean", "held", "refused", "moved"]
        manual = write_manual(
            tmp_path / "many-calls.json", *(tool(n, f"{origin(up)}/{n}") for n in names)
        )
        async with bridge(manual) as client:
            pid = child_pid(str(manual))

            async def calls(count: int) -> list[bool]:
                results = []
                for i in range(count):
                    result = await client.call_tool(names[i % 4], {"max_events": 2})
                    results.append(result.is_error)
                return results

            await calls(40)  # warm up: imports, caches, the allocator's arenas
            fds, socks, rss = open_fds(pid), sockets(pid), rss_kib(pid)
            with anyio.fail_after(40):
                errors = await calls(200)
            fds_after, socks_after, rss_after = open_fds(pid), sockets(pid), rss_kib(pid)
            with anyio.fail_after(5):  # while the bridge still runs
                await up.wait_for_client_close()
    assert errors == [name == "refused" for name in names] * 50
    assert (fds_after, socks_after) == (fds, socks)
    assert up.open_connections == 0 and len(up.requests) == 240 + 60
    assert rss_after - rss <= 2048, f"RSS {rss} KiB -> {rss_after} KiB"


# == Progress ================================================================================


def recorder(seen: list[tuple[float, float | None, str | None]]) -> ProgressFnT:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    return on_progress


async def test_progress_with_a_fast_upstream(tmp_path: Path) -> None:
    """An upstream that writes 300 events in one burst: the host gets one notification per
    accepted event up to max_events, in order, progress strictly increasing 1..N with total
    N, each message naming its event, and the result holds exactly the notified events."""

    async def burst(request: Request, response: Response) -> None:
        await response.send(
            "".join(
                sse_lines({"event": "tick", "id": f"e{n}", "data": {"n": n}}) for n in range(300)
            )
        )
        await wait_disconnect(response)

    async with serve(burst) as up:
        manual = write_manual(tmp_path / "fast.json", tool("fast", f"{origin(up)}/s"))
        async with bridge(manual) as client:
            for max_events in (1, 100):
                seen: list[tuple[float, float | None, str | None]] = []
                result = await client.call_tool(
                    "fast", {"max_events": max_events}, progress_callback=recorder(seen)
                )
                batch = batch_of(result)
                assert batch["count"] == max_events and batch["stop_reason"] == "max_events"
                assert [p for p, _, _ in seen] == list(range(1, max_events + 1))
                assert {total for _, total, _ in seen} == {max_events}
                for (_, _, message), event in zip(seen, batch["events"], strict=True):
                    assert message and message.startswith(f"tick #{event['id']}:"), message
                assert ids(batch) == [f"e{n}" for n in range(max_events)]


# == Logs ====================================================================================


async def test_info_logs_name_each_stream_without_query_or_secret(tmp_path: Path) -> None:
    """--log-level info shows `upstream GET <scheme://host/path>: HTTP 200` for every stream,
    also after a redirect, with neither the query string nor the key (here in the query and a
    header); at debug, where httpcore2 (and, on a proxy route, httpx2 with the full URL) speak,
    the key is still masked. NO_PROXY without a proxy keeps streams on the direct route (no
    httpx2 request line), as a proxy-less environment does."""

    async def feed(request: Request, response: Response) -> None:
        if request.path == "/moved":
            await response.simple(307, "", headers={"Location": "/logged?again=1"})
            return
        await events(response, 1)
        await response.finish()

    async with serve(feed) as up, forward_proxy() as proxy:
        base = origin(up)
        key = {"auth_type": "api_key", "api_key": "${API_KEY}", "location": "query"}
        inputs = {"type": "object", "properties": {"symbol": {"type": "string"}}}
        manual = write_manual(
            tmp_path / "logs.json",
            tool("logged", f"{base}/logged", inputs, auth=key, headers={"X-K": "${API_KEY}"}),
            tool("moved", f"{base}/moved", inputs, auth=key),
        )
        env = {"API_KEY": SECRET}
        argv = ["call", "logged", "symbol=ZZQX", "--manual", str(manual), "--log-level"]
        info = await run_cli(*argv, "info", env=env)
        log = tmp_path / "serve.log"
        with log.open("w") as errlog:
            async with bridge(manual, env, "--log-level", "info", errlog=errlog) as client:
                batch_of(await client.call_tool("moved", {"symbol": "ZZQX"}))
        debug = await run_cli(*argv, "debug", env={**env, "NO_PROXY": "localhost"})
        proxied = await run_cli(*argv, "debug", env={**env, "HTTP_PROXY": proxy.url})
    assert info.returncode == 0, info.stderr
    line = f"mcp-sse-bridge: INFO: upstream GET {base}/logged: HTTP 200"
    assert line in info.stderr.decode().splitlines()
    served = log.read_text()
    assert f"upstream GET {base}/moved: HTTP 307" in served
    assert f"upstream GET {base}/logged: HTTP 200" in served
    for text in (info.stderr.decode(), served):
        upstream_lines = [line for line in text.splitlines() if "upstream" in line]
        assert upstream_lines and not any("?" in line or "ZZQX" in line for line in upstream_lines)
        assert SECRET not in text
    assert proxy.seen == [("GET", f"{base}/logged?symbol=ZZQX&X-Api-Key={SECRET}")]
    for done in (debug, proxied):
        stderr = done.stderr.decode()
        assert done.returncode == 0 and "DEBUG" in stderr, stderr
        assert SECRET not in stderr and SECRET not in done.stdout.decode()
    request_line = f"HTTP Request: GET {base}/logged?symbol=ZZQX&X-Api-Key=***"
    assert request_line in proxied.stderr.decode()
    assert "HTTP Request:" not in debug.stderr.decode()  # NO_PROXY alone: the direct route
