"""apply_auth and TokenCache against real loopback servers (an SSE upstream, an OAuth2 endpoint)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx2
import pytest

from mcp_sse_bridge.errors import AuthError, InsecureURLError, ManualError
from mcp_sse_bridge.manual import ApiKeyAuth, Auth, BasicAuth, OAuth2Auth, SseCallTemplate
from mcp_sse_bridge.manual.variables import SecretRegistry
from mcp_sse_bridge.upstream.auth import TokenCache, apply_auth
from mcp_sse_bridge.upstream.request import PreparedRequest, build_request

from .sse_server import Request, Response, SSEServer, serve, wait_disconnect

SECRET = "s3cr3t+/ value"


class Clock:
    """An injectable monotonic clock, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Answer = Callable[[Request, int], Awaitable[tuple[int, Any]]]


async def _issue(request: Request, n: int) -> tuple[int, Any]:
    return 200, {"access_token": f"tok{n}", "token_type": "Bearer", "expires_in": 100}


@asynccontextmanager
async def token_endpoint(answer: Answer = _issue) -> AsyncIterator[SSEServer]:
    """A real token endpoint: `answer(request, n)` gives (status, JSON object or raw bytes)."""

    async def handler(request: Request, response: Response) -> None:
        status, body = await answer(request, len(server.requests))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        await response.simple(status, content, content_type="application/json")

    async with serve(handler) as server:
        yield server


def _form(request: Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {key: value for key, [value] in parse_qs(request.body.decode()).items()}


def _oauth(server: SSEServer, scope: str | None = None) -> OAuth2Auth:
    return OAuth2Auth(
        token_url=f"{server.url}/token", client_id="bridge", client_secret=SECRET, scope=scope
    )


async def _send(prepared: PreparedRequest) -> Request:
    """Send an authenticated request to a real SSE upstream and return what it received."""

    async def ok(request: Request, response: Response) -> None:
        await response.head()
        await response.finish()

    async with serve(ok) as server, httpx2.AsyncClient() as client:
        url = prepared.url.replace("http://upstream", server.url)
        await client.request(
            prepared.method, url, headers=prepared.headers, content=prepared.content
        )
    [request] = server.requests
    return request


async def _authed(auth: Auth | None, **template: Any) -> PreparedRequest:
    prepared = build_request(SseCallTemplate(url="http://upstream/events?a=1", **template), {})
    async with httpx2.AsyncClient() as client:
        return await apply_auth(prepared, auth, client=client, tokens=TokenCache())


# --- api_key and basic ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_api_key_header_defaults_to_x_api_key() -> None:
    got = await _send(await _authed(ApiKeyAuth(api_key="k-123")))
    assert got.headers["x-api-key"] == "k-123"
    assert got.headers["accept"] == "text/event-stream"


@pytest.mark.anyio
async def test_api_key_replaces_a_static_header_of_any_case() -> None:
    auth = ApiKeyAuth(api_key="Bearer abc", var_name="Authorization")
    prepared = await _authed(auth, headers={"authorization": "Bearer stale"})
    assert [k for k in prepared.headers if k.lower() == "authorization"] == ["Authorization"]
    got = await _send(prepared)
    assert got.headers["authorization"] == "Bearer abc"


@pytest.mark.anyio
async def test_api_key_in_query_is_appended() -> None:
    got = await _send(await _authed(ApiKeyAuth(api_key="k&1=2", var_name="key", location="query")))
    assert got.query == [("a", "1"), ("key", "k&1=2")]


@pytest.mark.anyio
async def test_api_key_cookie_joins_existing_cookies() -> None:
    auth = ApiKeyAuth(api_key="abc", var_name="access_token", location="cookie")
    got = await _send(await _authed(auth, headers={"Cookie": "theme=dark"}))
    assert got.headers["cookie"] == "theme=dark; access_token=abc"
    got = await _send(await _authed(auth))
    assert got.headers["cookie"] == "access_token=abc"


@pytest.mark.anyio
async def test_basic_auth_header() -> None:
    got = await _send(await _authed(BasicAuth(username="alice", password="pä:ss")))
    scheme, _, encoded = got.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "alice:pä:ss"


@pytest.mark.anyio
async def test_derived_credentials_are_registered_for_redaction() -> None:
    prepared = build_request(SseCallTemplate(url="https://h/x"), {})
    secrets = SecretRegistry()
    basic = BasicAuth(username="alice", password="wonderland")
    async with token_endpoint() as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache()
        for auth in (basic, _oauth(endpoint)):
            await apply_auth(prepared, auth, client=client, tokens=tokens, secrets=secrets)
    echoed = f"upstream said: Basic {base64.b64encode(b'alice:wonderland').decode()} / tok1 ok"
    assert secrets.redact(echoed) == "upstream said: Basic *** / *** ok"


@pytest.mark.anyio
async def test_no_auth_and_no_mutation() -> None:
    prepared = build_request(SseCallTemplate(url="https://h/x"), {})
    before = dict(prepared.headers)
    async with httpx2.AsyncClient() as client:
        assert await apply_auth(prepared, None, client=client, tokens=TokenCache()) is prepared
        auth = ApiKeyAuth(api_key="k")
        authed = await apply_auth(prepared, auth, client=client, tokens=TokenCache())
    assert prepared.headers == before
    assert authed.headers["X-Api-Key"] == "k"


@pytest.mark.parametrize(
    "auth",
    [
        ApiKeyAuth(api_key="key-value\r\nX-Evil: 1"),
        ApiKeyAuth(api_key="key-value\r"),
        ApiKeyAuth(api_key="key-value", var_name="X-Key\nX-Evil"),
        ApiKeyAuth(api_key="key-value\n", location="query"),
        ApiKeyAuth(api_key="key-value\x00", location="cookie"),
        ApiKeyAuth(api_key="key-value; admin=1", location="cookie"),
        ApiKeyAuth(api_key="key-välue"),
        ApiKeyAuth(api_key="key-value", var_name="Bad Name"),
        BasicAuth(username="alice", password="key-value\r\n"),
        BasicAuth(username="ali:ce", password="key-value"),
    ],
)
@pytest.mark.anyio
async def test_unsendable_credentials_are_refused_without_echo(auth: Auth) -> None:
    with pytest.raises(ManualError) as info:
        await _authed(auth)
    assert "key-v" not in str(info.value)
    assert "auth" in str(info.value)


# --- OAuth2 client credentials --------------------------------------------------------------


@pytest.mark.anyio
async def test_oauth2_fetches_once_and_sends_bearer() -> None:
    async with token_endpoint() as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache()
        auth = _oauth(endpoint)
        prepared = build_request(SseCallTemplate(url="http://upstream/e"), {})
        first = await apply_auth(prepared, auth, client=client, tokens=tokens)
        second = await apply_auth(prepared, auth, client=client, tokens=tokens)
    assert first.headers["Authorization"] == second.headers["Authorization"] == "Bearer tok1"
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", "/token")
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers
    assert _form(request) == {
        "grant_type": "client_credentials",
        "client_id": "bridge",
        "client_secret": SECRET,
    }
    got = await _send(first)
    assert got.headers["authorization"] == "Bearer tok1"


@pytest.mark.anyio
async def test_oauth2_scope_is_sent_and_keys_the_cache() -> None:
    async with token_endpoint() as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache()
        assert await tokens.token(client, _oauth(endpoint, "read")) == "tok1"
        assert await tokens.token(client, _oauth(endpoint, "write")) == "tok2"
        assert await tokens.token(client, _oauth(endpoint)) == "tok3"
        assert await tokens.token(client, _oauth(endpoint, "read")) == "tok1"
    assert [_form(r).get("scope") for r in endpoint.requests] == ["read", "write", None]


@pytest.mark.parametrize(
    ("expires_in", "fresh_for"),
    [(100, 90.0), ("100", 90.0), (3600, 3570.0), (0, 0.0)],
)
@pytest.mark.anyio
async def test_oauth2_expiry_with_margin(expires_in: Any, fresh_for: float) -> None:
    async def answer(request: Request, n: int) -> tuple[int, Any]:
        return 200, {"access_token": f"tok{n}", "expires_in": expires_in}

    clock = Clock()
    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache(clock=clock)
        auth = _oauth(endpoint)
        assert await tokens.token(client, auth) == "tok1"
        if fresh_for:
            clock.now += fresh_for - 0.01
            assert await tokens.token(client, auth) == "tok1"
        clock.now += 0.01
        assert await tokens.token(client, auth) == "tok2"
    assert len(endpoint.requests) == 2


@pytest.mark.anyio
async def test_oauth2_without_expires_in_lasts_until_forced() -> None:
    async def answer(request: Request, n: int) -> tuple[int, Any]:
        return 200, {"access_token": f"tok{n}"}

    clock = Clock()
    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache(clock=clock)
        auth = _oauth(endpoint)
        assert await tokens.token(client, auth) == "tok1"
        clock.now += 10**9
        assert await tokens.token(client, auth) == "tok1"
        assert await tokens.token(client, auth, force=True) == "tok2"
        prepared = build_request(SseCallTemplate(url="http://upstream/e"), {})
        authed = await apply_auth(prepared, auth, client=client, tokens=tokens, force_refresh=True)
    assert authed.headers["Authorization"] == "Bearer tok3"
    assert len(endpoint.requests) == 3


def _gated(gate: anyio.Event, first: int = 1) -> Answer:
    """Answer the token requests from number `first` on only once `gate` is set."""

    async def answer(request: Request, n: int) -> tuple[int, Any]:
        if n >= first:
            await gate.wait()
        return await _issue(request, n)

    return answer


@pytest.mark.parametrize("first", [1, 2], ids=["first-fetch", "forced-refresh"])
@pytest.mark.anyio
async def test_concurrent_callers_share_one_request(first: int) -> None:
    gate = anyio.Event()
    results: list[str] = []
    async with token_endpoint(_gated(gate, first)) as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache()
        auth = _oauth(endpoint)
        if first == 2:
            assert await tokens.token(client, auth) == "tok1"

        async def call() -> None:
            results.append(await tokens.token(client, auth, force=first == 2))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            assert len(endpoint.requests) == first
            gate.set()
        assert await tokens.token(client, auth) == f"tok{first}"
    assert results == [f"tok{first}"] * 20
    assert len(endpoint.requests) == first


@pytest.mark.anyio
async def test_concurrent_callers_share_one_failure() -> None:
    gate = anyio.Event()
    errors: list[AuthError] = []

    async def answer(request: Request, n: int) -> tuple[int, Any]:
        await gate.wait()
        return 503, {"error": "temporarily_unavailable"}

    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        tokens = TokenCache()

        async def call() -> None:
            with pytest.raises(AuthError) as info:
                await tokens.token(client, _oauth(endpoint))
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            gate.set()
        assert len(endpoint.requests) == 1
        with pytest.raises(AuthError):  # a later call tries again
            await tokens.token(client, _oauth(endpoint))
    assert [e.status for e in errors] == [503] * 5
    assert len(endpoint.requests) == 2


@pytest.mark.anyio
async def test_rejected_form_credentials_fall_back_to_basic() -> None:
    async def answer(request: Request, n: int) -> tuple[int, Any]:
        if "authorization" not in request.headers:
            return 400, {"error": "invalid_client"}
        return await _issue(request, n)

    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        assert await TokenCache().token(client, _oauth(endpoint, "read")) == "tok2"
    first, second = endpoint.requests
    assert "client_secret" in _form(first)
    assert _form(second) == {"grant_type": "client_credentials", "scope": "read"}
    basic = base64.b64decode(second.headers["authorization"].removeprefix("Basic "))
    assert basic.decode() == f"bridge:{SECRET}"


@pytest.mark.parametrize(("status", "requests"), [(401, 2), (400, 2), (403, 1), (500, 1)])
@pytest.mark.anyio
async def test_token_errors_carry_status_but_never_the_secret(status: int, requests: int) -> None:
    async def echo(request: Request, n: int) -> tuple[int, Any]:
        echoed = f"{request.body.decode()} {request.headers.get('authorization', '')} {SECRET}"
        return status, f"bad\x1b[31m\r\nrequest: {echoed}".encode()

    async with token_endpoint(echo) as endpoint, httpx2.AsyncClient() as client:
        with pytest.raises(AuthError) as info:
            await TokenCache().token(client, _oauth(endpoint))
    error = info.value
    assert error.status == status
    assert f"answered {status}" in str(error)
    assert "bad [31m request: grant_type=client_credentials" in error.body_excerpt
    assert "s3cr3t" not in str(error) + error.body_excerpt
    assert base64.b64encode(f"bridge:{SECRET}".encode()).decode() not in str(error)
    assert len(endpoint.requests) == requests


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>login</html>", "JSON object"),
        (b'["tok"]', "JSON object"),
        ({"token": "LEAKED", "expires_in": 5}, "keys: expires_in, token"),
        ({"access_token": ""}, "access_token"),
        ({"access_token": 42}, "access_token"),
        ({"access_token": "LEAKED\r\nX-Evil: 1"}, "access_token"),
    ],
)
@pytest.mark.anyio
async def test_unusable_token_responses(body: Any, problem: str) -> None:
    async def answer(request: Request, n: int) -> tuple[int, Any]:
        return 200, body

    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        with pytest.raises(AuthError, match=problem) as info:
            await TokenCache().token(client, _oauth(endpoint))
    assert "LEAKED" not in str(info.value)


@pytest.mark.anyio
async def test_token_redirect_is_not_followed() -> None:
    async def answer(request: Request, n: int) -> tuple[int, Any]:
        return 302, {"error": "moved"}

    async with token_endpoint(answer) as endpoint, httpx2.AsyncClient() as client:
        with pytest.raises(AuthError) as info:
            await TokenCache().token(client, _oauth(endpoint))
    assert info.value.status == 302
    assert len(endpoint.requests) == 1


@pytest.mark.anyio
async def test_unreachable_token_endpoint() -> None:
    async with token_endpoint() as gone:
        url = f"http://user:PASSWORD@127.0.0.1:{gone.port}/token?sig=QUERYKEY"
    # nothing listens there any more
    auth = OAuth2Auth(token_url=url, client_id="bridge", client_secret=SECRET)
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthError, match="Could not get an OAuth2 token") as info:
            await TokenCache().token(client, auth)
    assert info.value.status is None
    assert f"http://127.0.0.1:{gone.port}/token" in str(info.value)
    for secret in ("s3cr3t", "PASSWORD", "QUERYKEY"):
        assert secret not in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "body-trickles"])
async def test_a_token_endpoint_that_never_answers_is_an_auth_error(trickle: bool) -> None:
    """The whole token request is bounded by the client's connect timeout: no headers at all,
    or a body that trickles in faster than any read timeout, ends in an AuthError that says so."""

    async def handler(request: Request, response: Response) -> None:
        if trickle:
            await response.head(200, content_type="application/json")
            for _ in range(100):  # 10 s at most
                await response.send(" ")
                await anyio.sleep(0.1)
        await wait_disconnect(response)

    async with serve(handler) as endpoint, httpx2.AsyncClient(timeout=0.5) as client:
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(AuthError) as info:
            await TokenCache().token(client, _oauth(endpoint))
        took = anyio.current_time() - started
    assert str(info.value).startswith(
        f"The OAuth2 token endpoint {endpoint.url}/token did not answer within 0.5 s."
    )
    assert SECRET not in str(info.value)
    assert took < 2


@pytest.mark.parametrize(
    "token_url", ["http://auth.example.com/token", "ftp://127.0.0.1/token", "http://0x7f.1/t"]
)
@pytest.mark.anyio
async def test_token_url_must_be_https_or_loopback(token_url: str) -> None:
    auth = OAuth2Auth(token_url=token_url, client_id="bridge", client_secret=SECRET)
    async with httpx2.AsyncClient() as client:
        with pytest.raises(InsecureURLError, match="token_url") as info:
            await TokenCache().token(client, auth)
    assert "whatever --allow-insecure-http says" in str(info.value)
