"""`probe` with several credentials at once: every one becomes a `${VAR}`, none is printed or
written, and the written tool still sends them all; plus the probe's plainer messages (a 204,
a URL that is not one, a tool named after a path of placeholders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from mcp_sse_bridge.authoring.suggest import plan_tool, tool_name
from mcp_sse_bridge.authoring.writing import refuse_secrets
from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.cli import main
from mcp_sse_bridge.errors import BridgeError
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import SecretRegistry, Variables
from mcp_sse_bridge.server.tools import build_server
from tests.sse_server import Request, Response, serve_in_thread, sse_lines, wait_disconnect

pytestmark = pytest.mark.usefixtures("restore_logging")

SECRETS = {
    "API_USERNAME": "user-7c1e",
    "API_PASSWORD": "pw-52ab9d",
    "ACCESS_TOKEN": "at-SECRET-1a2b",
    "API_KEY": "ak-SECRET-3c4d",
    "X_API_KEY": "hk-SECRET-5e6f",
}


def echo(seen: list[Request]) -> Any:
    """A feed that echoes the request target and credential headers back in every event, as
    careless APIs do, and holds the stream open."""

    async def handler(request: Request, response: Response) -> None:
        seen.append(request)
        await response.head()
        for i in range(1, 4):
            data = {
                "target": request.target,
                "authorization": request.headers.get("authorization", ""),
                "key": request.headers.get("x-api-key", ""),
            }
            await response.send(sse_lines({"id": i, "data": data}))
        await wait_disconnect(response)

    return handler


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def probe_url(base: str) -> str:
    user, password = SECRETS["API_USERNAME"], SECRETS["API_PASSWORD"]
    query = f"access_token={SECRETS['ACCESS_TOKEN']}&depth=3&api_key={SECRETS['API_KEY']}"
    return base.replace("://", f"://{user}:{password}@") + f"/v1/feed?{query}"


@pytest.mark.parametrize("json_report", [False, True])
def test_every_credential_of_the_url_and_headers_becomes_a_variable_and_none_is_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, json_report: bool
) -> None:
    seen: list[Request] = []
    target = tmp_path / "feed.json"
    with serve_in_thread(echo(seen)) as upstream:
        argv = ["probe", probe_url(upstream.url), "--header", f"X-Api-Key: {SECRETS['X_API_KEY']}"]
        argv += ["--events", "3", "--seconds", "5", "-o", str(target)]
        code, out, err = run(capsys, *argv, *(["--json"] if json_report else []))
        assert code == 0, err
        written = target.read_text()
        for value in SECRETS.values():
            assert value not in out + err + written, value
        assert "enum" in out or json_report  # the sample's schema is printed, masked
        assert ("api_key=***" in out) and ("access_token=***" in out)
        (tool,) = json.loads(written)["tools"]
        assert list(tool["inputs"]["properties"]) == ["depth"]  # no credential became an input
        template = tool["tool_call_template"]
        assert template["url"].endswith("/v1/feed?access_token=${ACCESS_TOKEN}&api_key=${API_KEY}")
        assert template["auth"] == {
            "auth_type": "basic",
            "username": "${API_USERNAME}",
            "password": "${API_PASSWORD}",
        }
        assert template["headers"] == {"X-Api-Key": "${X_API_KEY}"}
        for var in SECRETS:
            assert f"set {var} to " in err
        result = anyio.run(call_over_mcp, str(target))
    assert not result.is_error, result
    request = seen[-1]
    assert ("access_token", SECRETS["ACCESS_TOKEN"]) in request.query
    assert ("api_key", SECRETS["API_KEY"]) in request.query
    assert ("depth", "3") in request.query
    assert request.headers["x-api-key"] == SECRETS["X_API_KEY"]
    assert request.headers["authorization"].startswith("Basic ")
    for value in SECRETS.values():
        assert value not in json.dumps(result.structured_content)


async def call_over_mcp(path: str) -> Any:
    server = build_server(Bridge([load_manual(path)], variables=Variables(SECRETS, environ={})))
    async with mcp.Client(server, mode="legacy") as client:
        return await client.call_tool("feed", {"depth": 3, "max_events": 1})


def test_bearer_env_and_query_credentials_together_are_all_variables() -> None:
    plan = plan_tool("https://x.example/s?token=t-1234&sig=s-5678", {}, [], "FEED_TOKEN")
    template = plan.tool["tool_call_template"]
    assert template["auth"]["api_key"] == "Bearer ${FEED_TOKEN}"
    assert template["url"] == "https://x.example/s?token=${TOKEN}&sig=${SIG}"
    assert plan.values == {"TOKEN": "t-1234", "SIG": "s-5678"}
    assert plan.tool["inputs"]["properties"] == {}


def test_credentials_whose_names_collide_get_distinct_variables() -> None:
    plan = plan_tool("https://x.example/s?token=one-1111", {"api_token": "two-2222"}, [], None)
    plan2 = plan_tool("https://x.example/s?token=one-1111", {}, ["Token: two-2222"], None)
    assert plan.values == {"TOKEN": "one-1111", "API_TOKEN": "two-2222"}
    assert plan2.values == {"TOKEN": "one-1111", "TOKEN_2": "two-2222"}
    assert plan2.tool["tool_call_template"]["headers"] == {"Token": "${TOKEN_2}"}


def test_a_credential_word_after_the_url_is_a_variable_too() -> None:
    plan = plan_tool("https://x.example/s", {"api_key": "k-9999", "symbol": "AAPL"}, [], None)
    assert plan.tool["tool_call_template"]["auth"]["api_key"] == "${API_KEY}"
    assert list(plan.tool["inputs"]["properties"]) == ["symbol"]


def test_text_holding_any_known_secret_is_refused() -> None:
    secrets = SecretRegistry(["sk-live-1234"])
    refuse_secrets("nothing here", secrets, "print a probe report")
    with pytest.raises(BridgeError, match="Refusing to print a probe report that holds a secret"):
        refuse_secrets('{"enum": ["sk-live-1234"]}', secrets, "print a probe report")
    with pytest.raises(BridgeError, match="Refusing"):
        refuse_secrets("q=sk%2Dlive-1234 sk-live-1234", secrets, "write a manual")


def test_a_204_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    async def no_content(request: Request, response: Response) -> None:
        await response.simple(204)

    with serve_in_thread(no_content) as upstream:
        code, out, err = run(capsys, "probe", f"{upstream.url}/quiet", "--seconds", "2")
    assert code == 0, err
    assert out.strip() == (
        f"GET {upstream.url}/quiet: HTTP 204: no content, the server has no events for this URL"
    )


def test_a_word_that_is_not_a_url_is_echoed_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "probe", "not a url")
    assert code == 2 and "'not a url' is not an http(s) URL" in err
    code, _, err = run(capsys, "probe", "api.example.com/s?token=abcd-1234")
    assert "'api.example.com/s' is not an http(s) URL" in err and "abcd" not in err


def test_a_path_of_placeholders_names_the_tool_not_the_ip_address() -> None:
    assert tool_name("/{kind}", "127.0.0.1") == "kind"
    assert tool_name("/", "127.0.0.1") == "stream"
    assert tool_name("/", "::1") == "stream"
    assert tool_name("/{kind}", "events.example.com") == "kind"
    plan = plan_tool("http://127.0.0.1:1/{kind}", {"kind": "prices"}, [], None)
    assert plan.tool["name"] == "kind"
