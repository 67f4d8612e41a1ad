"""Shared fixtures: every async test runs on anyio's asyncio backend."""

import logging
from collections.abc import Iterator

import pytest
import trustme


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`cli.main()` configures logging for its process; give the test process its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx2", "httpcore", "mcp")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, saved in chatty.items():
        logging.getLogger(name).setLevel(saved)
    logging.captureWarnings(False)


@pytest.fixture
def ca() -> trustme.CA:
    """A private certificate authority (trust it through SSL_CERT_FILE or an ssl context)."""
    return trustme.CA()
