"""`--store` URLs beyond `redis://HOST:PORT/DB`: TLS (`rediss://`) and redis-py's query options.

A real redis-server that speaks only TLS, with a certificate from a test CA; the CA reaches the
bridge the way redis-py takes it, as `?ssl_ca_certs=` in the URL. A certificate the bridge
cannot verify, plain `redis://` against the TLS port, or a CA file that is not there fails at
start in one line naming `--store`; a password given as `?password=` is masked like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.acceptance.bridges import CLI
from tests.feeds import Ticker
from tests.redis_server import redis_server, require_redis_server, server_certificate
from tests.replicas import call, feeding, replicas, write_manual

pytestmark = pytest.mark.anyio

require_redis_server()


@pytest.fixture(scope="module")
def tls_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("redis-tls")
    with redis_server(directory, tls=server_certificate(directory / "pki")) as url:
        yield url


async def test_replicas_share_a_subscription_through_redis_over_tls(
    tmp_path: Path, tls_url: str
) -> None:
    async with feeding(Ticker(0.02)) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        async with replicas(manual, tls_url, 2) as (a, b):
            made = await call(a.url, "subscribe", tool="ticks", arguments={})
            assert made["state"] in ("connecting", "live")
            with anyio.fail_after(20):
                read = {"count": 0}
                while not read["count"]:
                    read = await call(
                        b.url,
                        "read_subscription",
                        subscription=made["subscription"],
                        wait_seconds=2,
                    )
            joined = await call(b.url, "subscribe", tool="ticks", arguments={})
            assert joined["joined"] and joined["subscription"] == made["subscription"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda url: url.partition("?")[0], "certificate verify failed"),
        (lambda url: url.replace("rediss://", "redis://").partition("?")[0], "(Redis) failed"),
    ],
    ids=["an-untrusted-certificate", "plain-redis-against-tls"],
)
async def test_a_tls_store_that_cannot_be_reached_safely_fails_at_start_in_one_line(
    tmp_path: Path, tls_url: str, change: Callable[[str], str], why: str
) -> None:
    url = change(tls_url)
    line = await refused_start(tmp_path, url)
    assert line.startswith(f"mcp-sse-bridge: error: --store {url}: ") and why in line


async def refused_start(tmp_path: Path, url: str) -> str:
    """The one line of stderr of a bridge started with `--store url`, which must exit 2."""
    async with feeding(Ticker(0.02)) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        with anyio.fail_after(30):
            refused = await anyio.run_process(
                [*CLI, "--manual", str(manual), "--store", url], check=False
            )
    assert refused.returncode == 2
    (line,) = refused.stderr.decode().strip().splitlines()
    return line


async def test_a_ca_file_that_is_not_there_is_named_at_start(tmp_path: Path, tls_url: str) -> None:
    url = tls_url.partition("?")[0] + f"?ssl_ca_certs={tmp_path / 'nope.pem'}"
    line = await refused_start(tmp_path, url)
    assert f"ssl_ca_certs='{tmp_path / 'nope.pem'}' is not a readable file" in line


@pytest.mark.parametrize(
    ("tail", "said"),
    [
        ("/0?foo=bar", "redis-py takes no URL option 'foo'; remove it"),
        ("/abc", "the database must be a number (redis://HOST:PORT/0), not 'abc'"),
        ("/0", "(this Redis needs a password: in the URL or MCP_SSE_BRIDGE_REDIS_PASSWORD)"),
    ],
    ids=["an-unknown-option", "a-database-that-is-no-number", "no-password-for-one-that-needs-it"],
)
async def test_a_store_url_redis_py_would_misread_is_one_line_saying_what_to_fix(
    tmp_path: Path, tail: str, said: str
) -> None:
    with redis_server(tmp_path / "redis", password="the-right-one") as url:
        bare = url.replace(":the-right-one@", "").removesuffix("/0")
        line = await refused_start(tmp_path, bare + tail)
    assert line.startswith("mcp-sse-bridge: error: --store redis://127.0.0.1:") and said in line


async def test_a_password_in_the_query_is_masked_in_the_error(tmp_path: Path) -> None:
    secret = "query-password-53cr3t"
    with redis_server(tmp_path / "redis", password="the-right-one") as url:
        wrong = url.replace(":the-right-one@", "") + f"?password={secret}"
        line = await refused_start(tmp_path, wrong)
    assert "--store redis://127.0.0.1:" in line and "password" in line.lower(), line
    assert secret not in line
