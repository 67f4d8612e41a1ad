"""A real `redis-server` (Debian's) on a free loopback port in a temp directory, for tests.

Persistence is off (no RDB, no AOF), so nothing outlives the test; the server is stopped (and
killed if it does not stop within 5 s) when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.thirdparty import accepts, free_port, stop

REDIS_SERVER = shutil.which("redis-server")


def require_redis_server() -> None:
    """Skip the calling test module, saying why, when redis-server is missing; under CI
    (`.ci/run` installs it) a missing one fails instead."""
    if REDIS_SERVER is not None:
        return
    reason = "redis-server is not installed (apt-get install redis-server)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


@contextlib.contextmanager
def redis_server(
    directory: Path, *, password: str | None = None, port: int | None = None
) -> Iterator[str]:
    """Start redis-server (on `port`, else a free one) and yield its URL
    (`redis://127.0.0.1:PORT/0`)."""
    assert REDIS_SERVER, "redis-server is not installed (apt-get install redis-server)"
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        REDIS_SERVER,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {process.stderr.read()!r}")
            time.sleep(0.02)
        auth = f":{password}@" if password else ""
        yield f"redis://{auth}127.0.0.1:{port}/0"
    finally:
        stop(process)
