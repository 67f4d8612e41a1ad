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
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

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


@dataclass(frozen=True)
class ServerCertificate:
    """PEM files: a test CA (trustme's) and a certificate it signed for 127.0.0.1, with its
    key."""

    ca: Path
    cert: Path
    key: Path


def server_certificate(directory: Path) -> ServerCertificate:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = ServerCertificate(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


@contextlib.contextmanager
def redis_server(
    directory: Path,
    *,
    password: str | None = None,
    port: int | None = None,
    tls: ServerCertificate | None = None,
) -> Iterator[str]:
    """Start redis-server (on `port`, else a free one) and yield its URL
    (`redis://127.0.0.1:PORT/0`). With `tls` it speaks TLS only, with that certificate, and
    the URL is `rediss://127.0.0.1:PORT/0?ssl_ca_certs=<the CA>`."""
    assert REDIS_SERVER, "redis-server is not installed (apt-get install redis-server)"
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    listen = ["--port", str(port)]
    if tls is not None:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
        listen += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
        listen += ["--tls-ca-cert-file", str(tls.ca)]
    args = [
        REDIS_SERVER,
        "--bind",
        "127.0.0.1",
        *listen,
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
        if tls is None:
            yield f"redis://{auth}127.0.0.1:{port}/0"
        else:
            yield f"rediss://{auth}127.0.0.1:{port}/0?ssl_ca_certs={tls.ca}"
    finally:
        stop(process)
