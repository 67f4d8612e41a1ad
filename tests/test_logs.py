"""Logs: at info, one line per stream naming its URL without the query string or a key; at debug,
where httpx2 and httpcore2 speak, every kind of credential (a literal api_key, an OAuth2 token,
a Basic header, a `${VAR}`) is still masked, on stdout and stderr, on every route.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.acceptance.bridges import manual_text, stdio_bridge, tool, write_manual
from tests.acceptance.cli import cli_env, run_cli, run_cli_without_proxies
from tests.acceptance.credentials import SECRET
from tests.acceptance.network import forward_proxy, origin
from tests.acceptance.results import batch_of
from tests.acceptance.upstreams import events
from tests.sse_server import Request, Response, serve, serve_in_thread, sse_lines

pytestmark = pytest.mark.anyio


LITERAL_KEY = "literal-manual-key-6e4d9a"


ACCESS_TOKEN = "oauth-access-token-5f3a9c71"


USERNAME, PASSWORD = "acceptance-user", "basic-password-8b2c11"


BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


async def echoing_upstream(request: Request, response: Response) -> None:
    """An OAuth2 token endpoint, and a stream that echoes the credentials in a response header."""
    if request.path == "/token":
        token = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}
        await response.simple(200, json.dumps(token), "application/json")
        return
    await response.head(200, {"X-Echo": request.headers.get("authorization", "none")})
    await response.send(sse_lines({"id": "1", "data": "hello"}))
    await response.finish()


def test_credentials_never_reach_the_debug_log(tmp_path: Path) -> None:
    """README: every value is redacted "from results, errors, progress messages and logs".

    Three credentials no `${VAR}` holds: an api_key written in the manual (it travels in the
    query string, which httpx logs), an OAuth2 access token and a Basic header (echoed back by
    the upstream in a response header, which httpcore logs at debug).
    """
    with serve_in_thread(echoing_upstream) as server:
        literal = {"auth_type": "api_key", "api_key": LITERAL_KEY, "location": "query"}
        oauth = {
            "auth_type": "oauth2",
            "token_url": f"{server.url}/token",
            "client_id": "acceptance-client",
            "client_secret": "${CLIENT_SECRET}",
        }
        basic = {"auth_type": "basic", "username": USERNAME, "password": "${PASSWORD}"}
        manual = tmp_path / "creds.json"
        manual.write_text(
            manual_text(
                tool("literal", f"{server.url}/s", auth=literal),
                tool("oauth", f"{server.url}/s", auth=oauth),
                tool("basic", f"{server.url}/s", auth=basic),
            )
        )
        env = cli_env(CLIENT_SECRET="client-secret-77d1e2aa", PASSWORD=PASSWORD)
        leaks = []
        for name in ("literal", "oauth", "basic"):
            argv = ["call", name, "max_events=1", "--manual", str(manual), "--log-level", "debug"]
            done = run_cli(*argv, env=env)
            assert done.returncode == 0, done.stderr[-2000:]
            for secret in (LITERAL_KEY, ACCESS_TOKEN, BASIC, PASSWORD):
                for channel, text in (("stdout", done.stdout), ("stderr", done.stderr)):
                    leaks += [
                        f"`call {name}` {channel}: {line.strip()[:160]}"
                        for line in text.splitlines()
                        if secret in line
                    ]
    assert not leaks, "\n".join(leaks)


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
        info = await run_cli_without_proxies(*argv, "info", env=env)
        log = tmp_path / "serve.log"
        with log.open("w") as errlog:
            async with stdio_bridge(manual, env, "--log-level", "info", errlog=errlog) as client:
                batch_of(await client.call_tool("moved", {"symbol": "ZZQX"}))
        debug = await run_cli_without_proxies(*argv, "debug", env={**env, "NO_PROXY": "localhost"})
        proxied = await run_cli_without_proxies(
            *argv, "debug", env={**env, "HTTP_PROXY": proxy.url}
        )
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
