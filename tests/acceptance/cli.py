"""The `mcp-sse-bridge` command as a user types it: a subprocess, or `cli.main` in process."""

from __future__ import annotations

import os
import subprocess

import anyio
import pytest

from mcp_sse_bridge.cli.main import main
from tests.acceptance.bridges import CLI


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
    )


async def run_cli_without_proxies(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`mcp-sse-bridge ARGV` with this process's environment, without its proxy settings (the
    upstreams are on loopback), plus `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environment.update(env or {})
    with anyio.fail_after(30):
        return await anyio.run_process(
            [*CLI, *argv], env=environment, check=False, stdin=subprocess.DEVNULL
        )


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`cli.main` in-process; an exception escaping it is exit code -1 (README: no tracebacks)."""
    try:
        code = main(list(argv))
    except Exception as exc:
        out, err = capsys.readouterr()
        return -1, out, f"{err}\n`mcp-sse-bridge {' '.join(argv)}` raised {exc!r}"
    out, err = capsys.readouterr()
    return code, out, err
