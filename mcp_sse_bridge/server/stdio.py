"""Non-blocking stdin/stdout for the SDK's stdio transport, served on the event loop.

The SDK's default wraps the standard streams in `anyio.wrap_file`, which hops to a worker
thread for every line read and twice for every message written: with a thousand calls in
flight those hops cost more than the calls themselves. When stdin or stdout is a pipe or a
socket (what MCP hosts give a server), it is read and written here with `os.read`/`os.write`
and `anyio.wait_readable`/`wait_writable` instead. A terminal, a file, a device or Windows keeps
the SDK's default for that side.

Like the SDK's own claim, fd 0 points at the null device and fd 1 at stderr while serving, so
stray reads see EOF and stray prints miss the wire; both come back, blocking again, at exit.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import anyio

CHUNK = 1 << 16
"""Bytes per `os.read`: a pipe's default capacity on Linux."""


class PipeReader:
    """Lines of UTF-8 text from a non-blocking descriptor, as `stdio_server` iterates stdin.

    Lines come without their `\\n` (JSON ignores the missing whitespace); an unterminated last
    line at EOF is still a line, as in a text file. Invalid UTF-8 becomes U+FFFD, as in the SDK's
    reader, so a bad line is a parse error for that line, not the end of the session.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def __aiter__(self) -> AsyncIterator[str]:
        fd = self._fd
        parts: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not chunk:
                if parts:
                    yield b"".join(parts).decode("utf-8", "replace")
                return
            *lines, rest = chunk.split(b"\n")
            if lines:  # join the pieces once: a 1 MB line arrives in many chunks
                lines[0] = b"".join([*parts, lines[0]])
                parts.clear()
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if rest:
                parts.append(rest)


class PipeWriter:
    """Writes each message whole to a non-blocking descriptor, waiting while the pipe is full."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                data = data[os.write(self._fd, data) :]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)

    async def flush(self) -> None:
        """Nothing is buffered: `write` returns once the kernel holds every byte."""


@contextlib.contextmanager
def nonblocking_stdio() -> Iterator[tuple[PipeReader | None, PipeWriter | None]]:
    """`(stdin, stdout)` for `stdio_server(stdin, stdout)`; None leaves that side to the SDK."""
    if sys.platform == "win32":  # no readiness waits on Windows pipes
        yield None, None
        return
    with (
        claimed(0, lambda: os.open(os.devnull, os.O_RDONLY)) as stdin,
        claimed(1, lambda: os.dup(2)) as stdout,
    ):
        yield (
            None if stdin is None else PipeReader(stdin),
            None if stdout is None else PipeWriter(stdout),
        )


@contextlib.contextmanager
def claimed(fd: int, open_diversion: Callable[[], int]) -> Iterator[int | None]:
    """A private non-blocking duplicate of pipe or socket `fd`, which points elsewhere meanwhile.

    O_NONBLOCK belongs to the open file description, which `fd` may share with the parent
    (a shell's pipe): the original mode is put back at exit, and `fd` onto the wire again.
    None, and nothing changed, when `fd` is anything else or cannot be claimed.
    """
    try:
        private = _divert(fd, open_diversion) if _is_pipe(fd) else None
    except OSError:
        private = None
    if private is None:
        yield None
        return
    was_blocking = os.get_blocking(private)
    try:
        os.set_blocking(private, False)
        yield private
    finally:
        os.set_blocking(private, was_blocking)
        os.dup2(private, fd)
        os.close(private)


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _divert(fd: int, open_diversion: Callable[[], int]) -> int:
    """Move the wire to a descriptor above 2 (so it cannot be mistaken for a standard one)."""
    import fcntl  # POSIX only, like this path

    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        diversion = open_diversion()
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)
    except OSError:
        os.close(private)
        raise
    return private
