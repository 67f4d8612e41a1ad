"""build_request and check_url: what a real loopback server receives, and which URLs are refused."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest

from mcp_sse_bridge.errors import ArgumentError, InsecureURLError, ManualError
from mcp_sse_bridge.manual import SseCallTemplate
from mcp_sse_bridge.upstream.request import PreparedRequest, build_request
from mcp_sse_bridge.urls import check_url

from .sse_server import Request, Response, serve


async def _ok(request: Request, response: Response) -> None:
    await response.head()
    await response.finish()


async def _received(prepared: PreparedRequest) -> Request:
    """Send `prepared` to a real loopback server and return what it got."""
    async with serve(_ok) as server, httpx2.AsyncClient() as client:
        url = prepared.url.replace("http://upstream", server.url)
        response = await client.request(
            prepared.method, url, headers=prepared.headers, content=prepared.content
        )
        assert response.status_code == 200
    [request] = server.requests
    return request


def _template(url: str = "http://upstream/events", **fields: Any) -> SseCallTemplate:
    return SseCallTemplate(url=url, **fields)


@pytest.mark.anyio
async def test_get_maps_path_query_and_headers() -> None:
    template = _template(
        "http://upstream/streams/{stream_id}/feed?fixed=1&b=x%2Fy",
        headers={"X-Client": "bridge", "accept": "application/json", "cache-control": "max-age=9"},
        header_fields=["X-User", "X-Flags"],
    )
    arguments = {
        "stream_id": "a/b ../c?d#e",
        "X-User": "alice",
        "X-Flags": {"beta": True},
        "symbols": ["AAPL", None, 7, {"k": [1]}],
        "verbose": False,
        "limit": 5,
        "ratio": 0.5,
        "filter": {"level": "warn", "tags": ["x"]},
        "skip": None,
        "empty": [],
    }
    prepared = build_request(template, arguments)

    assert (prepared.method, prepared.content, prepared.has_body) == ("GET", None, False)
    got = await _received(prepared)
    assert got.method == "GET"
    assert got.path == "/streams/a%2Fb%20..%2Fc%3Fd%23e/feed"
    assert got.target.split("?", 1)[1].startswith("fixed=1&b=x%2Fy&symbols=AAPL&")
    assert got.query == [
        ("fixed", "1"),
        ("b", "x/y"),
        ("symbols", "AAPL"),
        ("symbols", "7"),
        ("symbols", '{"k":[1]}'),
        ("verbose", "false"),
        ("limit", "5"),
        ("ratio", "0.5"),
        ("filter", '{"level":"warn","tags":["x"]}'),
    ]
    assert got.headers["x-user"] == "alice"
    assert got.headers["x-flags"] == '{"beta":true}'
    assert got.headers["x-client"] == "bridge"
    assert got.headers["accept"] == "text/event-stream"
    assert got.headers["cache-control"] == "no-cache"
    assert "content-type" not in got.headers
    assert "stream_id" in arguments  # the caller's mapping is not consumed


@pytest.mark.anyio
async def test_post_json_body() -> None:
    template = _template(body_field="config", header_fields=["X-Trace"])
    body = {"level": "warn", "name": "café", "n": [1, 2.5, None]}
    prepared = build_request(template, {"config": body, "X-Trace": 42, "q": "x y"})

    assert (prepared.method, prepared.has_body) == ("POST", True)
    got = await _received(prepared)
    assert got.method == "POST"
    assert got.headers["content-type"] == "application/json"
    assert got.json() == body
    assert "café".encode() in got.body
    assert got.headers["x-trace"] == "42"
    assert got.target == "/events?q=x%20y"


@pytest.mark.anyio
async def test_string_body_is_utf8_text() -> None:
    prepared = build_request(_template(body_field="prompt"), {"prompt": "héllo\nworld"})
    got = await _received(prepared)
    assert got.body == "héllo\nworld".encode()
    assert got.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_manual_content_type_wins() -> None:
    template = _template(body_field="config", headers={"content-type": "application/x-ndjson"})
    got = await _received(build_request(template, {"config": [1, 2]}))
    assert got.headers["content-type"] == "application/x-ndjson"
    assert got.body == b"[1,2]"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=utf-8"],
)
async def test_a_dict_body_is_form_encoded_when_the_manual_says_so(content_type: str) -> None:
    """As UTCP's reference client does; values are written as query parameters are."""
    template = _template(body_field="form", headers={"Content-Type": content_type})
    form = {"q": "a b&c=é", "n": 2, "on": True, "tags": ["x", "y"], "skip": None, "o": {"k": 1}}
    got = await _received(build_request(template, {"form": form}))
    assert got.headers["content-type"] == content_type
    pairs = [("q", "a b&c=é"), ("n", "2"), ("on", "true"), ("tags", "x"), ("tags", "y")]
    assert parse_qsl(got.body.decode()) == [*pairs, ("o", '{"k":1}')]


def test_a_list_body_stays_json_under_a_form_content_type() -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    prepared = build_request(_template(body_field="b", headers=headers), {"b": [1, 2]})
    assert prepared.content == b"[1,2]"


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"q": "bad\ud800"}, "q"),
        ({"p": "\udfff", "q": "ok"}, "p"),
        ({"b": "x\ud800"}, "b"),
        ({"b": {"nested": ["ok", "\ud800"]}}, "b"),
        ({"q": {"\ud800key": 1}}, "q"),
        ({"H": "\ud800"}, "H"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_argument(
    arguments: dict[str, Any], argument: str
) -> None:
    """JSON can carry "\\ud800", UTF-8 cannot: a clear ArgumentError, not a UnicodeEncodeError."""
    template = _template("http://upstream/s/{p}", body_field="b", header_fields=["H"])
    with pytest.raises(ArgumentError, match="surrogate") as info:
        build_request(template, {"p": "ok", **arguments})
    assert info.value.argument == argument
    assert f"'{argument}'" in str(info.value)


def test_a_surrogate_pair_written_as_one_character_is_fine() -> None:
    prepared = build_request(_template(), {"q": "\U0001f680"})
    assert prepared.url.endswith("?q=%F0%9F%9A%80")


@pytest.mark.parametrize("arguments", [{}, {"config": None}])
def test_absent_body_means_get(arguments: dict[str, Any]) -> None:
    prepared = build_request(_template(body_field="config"), arguments)
    assert (prepared.method, prepared.content, prepared.has_body) == ("GET", None, False)
    assert "Content-Type" not in prepared.headers
    assert prepared.url == "http://upstream/events"


def test_placeholder_in_query_and_fragment_dropped() -> None:
    template = _template("https://api.example.com/s?symbol={sym}&x=1#frag")
    prepared = build_request(template, {"sym": "A&B=C", "more": True})
    assert prepared.url == "https://api.example.com/s?symbol=A%26B%3DC&x=1&more=true"


def test_repeated_placeholder_uses_one_argument() -> None:
    prepared = build_request(_template("https://h/{id}/x/{id}"), {"id": 7})
    assert prepared.url == "https://h/7/x/7"


@pytest.mark.parametrize(
    ("url", "arguments", "missing"),
    [
        ("https://h/{a}/{b}", {"a": 1}, "b"),
        ("https://h/{a}", {"a": None}, "a"),
        ("https://h/s?x={q}", {}, "q"),
    ],
)
def test_missing_placeholder_is_named(url: str, arguments: dict[str, Any], missing: str) -> None:
    with pytest.raises(ArgumentError) as info:
        build_request(_template(url), arguments)
    assert info.value.argument == missing
    assert repr(missing) in str(info.value)


def test_header_fields_are_popped_before_the_url() -> None:
    template = _template("https://h/{user}", header_fields=["user"])
    with pytest.raises(ArgumentError, match="'user'"):
        build_request(template, {"user": "bob"})


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_dot_segments_cannot_climb_the_path(value: str) -> None:
    with pytest.raises(ArgumentError) as info:
        build_request(_template("https://h/users/{name}/feed"), {"name": value})
    assert info.value.argument == "name"


@pytest.mark.parametrize(
    ("value", "path"),
    [("...", "/users/.../feed"), ("../admin", "/users/..%2Fadmin/feed"), (".x", "/users/.x/feed")],
)
def test_dots_inside_a_segment_are_harmless(value: str, path: str) -> None:
    prepared = build_request(_template("https://h/users/{name}/feed"), {"name": value})
    assert httpx2.URL(prepared.url).raw_path.decode() == path


@pytest.mark.parametrize(
    "url", ["https://{host}/x", "https://{region}.example.com/x", "{s}://h/", "{s}/x", "/rel/{s}"]
)
def test_placeholder_in_host_is_a_manual_error(url: str) -> None:
    with pytest.raises(ManualError, match="path or query"):
        build_request(_template(url), {"host": "evil.com", "region": "eu", "s": "http"})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\r\nX-Evil: 1", "line break"),
        ("a\nb", "line break"),
        ("a\x00b", "line break"),
        ("caf\u00e9", "ASCII"),
        ("bell\x07", "ASCII"),
    ],
)
def test_header_injection_is_refused(value: str, problem: str) -> None:
    template = _template(header_fields=["X-User"])
    with pytest.raises(ArgumentError, match=problem) as info:
        build_request(template, {"X-User": value})
    assert info.value.argument == "X-User"


def test_invalid_header_name_is_refused() -> None:
    template = _template(header_fields=["Bad Name"])
    with pytest.raises(ArgumentError, match="not a valid HTTP token") as info:
        build_request(template, {"Bad Name": "x"})
    assert info.value.argument == "Bad Name"


def test_static_header_with_line_break_is_a_manual_error() -> None:
    template = _template(headers={"X-Key": "abc\r\nX-Evil: 1"})
    with pytest.raises(ManualError, match="'X-Key'"):
        build_request(template, {})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": object()}])
def test_values_json_cannot_encode_are_refused(value: Any) -> None:
    with pytest.raises(ArgumentError) as info:
        build_request(_template(), {"q": value})
    assert info.value.argument == "q"


@pytest.mark.anyio
async def test_header_values_lose_surrounding_whitespace() -> None:
    template = _template(headers={"X-Static": "\t v1 "}, header_fields=["X-Arg"])
    got = await _received(build_request(template, {"X-Arg": " a\tb  "}))
    assert (got.headers["x-static"], got.headers["x-arg"]) == ("v1", "a\tb")


def test_header_field_values_are_json_text() -> None:
    template = _template(header_fields=["A", "B", "C", "D"])
    prepared = build_request(template, {"A": True, "B": 1.5, "C": ["x", 1], "D": {"é": 1}})
    assert [prepared.headers[name] for name in "ABCD"] == [
        "true",
        "1.5",
        '["x",1]',
        json.dumps({"é": 1}, separators=(",", ":")),
    ]


# --- check_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/stream",
        "https://user:pw@example.com/stream",
        "HTTPS://EXAMPLE.COM/",
        "http://127.0.0.1:8080/events",
        "http://127.5.6.7/",
        "http://localhost/",
        "http://LOCALHOST:9/",
        "http://[::1]/",
        "http://[::1]:8000/x",
        "http://[::ffff:127.0.0.1]/",
        "http://user:pw@localhost/",
    ],
)
def test_check_url_allows(url: str) -> None:
    check_url(url, allow_insecure_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/stream",
        "http://127.0.0.1.evil.com/",
        "http://localhost.evil.com/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://[::2]/",
    ],
)
def test_check_url_refuses_plain_http_off_loopback(url: str) -> None:
    with pytest.raises(InsecureURLError) as info:
        check_url(url, allow_insecure_http=False)
    assert "https://" in str(info.value)
    assert "--allow-insecure-http" in str(info.value)
    check_url(url, allow_insecure_http=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "ws://localhost/",
        "https:///no-host",
        "no scheme at all",
        "http://[::1/",
        "http://[::1]evil.com/",
        "https://ⓛocalhost/",
    ],
)
@pytest.mark.parametrize("allow", [False, True])
def test_check_url_refuses_other_schemes_and_junk(url: str, allow: bool) -> None:
    with pytest.raises(InsecureURLError):
        check_url(url, allow_insecure_http=allow)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s3cr3t-pw@example.com/x?k=v",
        "http://localhost@evil.com/",
        "http://[::1]evil.com@[127.0.0.1/",  # urllib reads 127.0.0.1, httpx2 does not
    ],
)
@pytest.mark.parametrize("allow", [False, True])
def test_check_url_refuses_credentials_over_remote_plain_http(url: str, allow: bool) -> None:
    with pytest.raises(InsecureURLError, match="credentials") as info:
        check_url(url, allow_insecure_http=allow)
    assert "s3cr3t-pw" not in str(info.value)
    assert "alice" not in str(info.value)
    assert url.rpartition("@")[2].split("/")[0] in str(info.value)


@pytest.mark.anyio
async def test_check_url_accepts_the_real_loopback_server() -> None:
    async with serve(_ok) as server:
        check_url(f"{server.url}/events", allow_insecure_http=False)
        check_url(f"http://localhost:{server.port}/events", allow_insecure_http=False)
