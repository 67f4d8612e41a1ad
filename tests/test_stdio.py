"""Non-blocking stdin/stdout: lines and whole messages through real pipes, and fd claims undone.

End to end over stdio (a subprocess on pipes) lives in test_server.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_sse_bridge.server.stdio import PipeReader, PipeWriter, claimed

pytestmark = pytest.mark.anyio

BIG = "x" * (1 << 20)  # 16 times a pipe's capacity: partial writes and waits on both ends


class Pipe:
    """Both non-blocking ends of a pipe; `end()` closes the write end (EOF for the reader)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.open = [self.read_fd, self.write_fd]

    def end(self) -> None:
        self.open.remove(self.write_fd)
        os.close(self.write_fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    pipe = Pipe()
    yield pipe
    for fd in pipe.open:
        os.close(fd)


async def read_all(reader: PipeReader) -> list[str]:
    with anyio.fail_after(10):
        return [line async for line in reader]


async def test_lines_and_a_1_mb_message_arrive_whole_then_eof_ends_the_reader(
    pipe: Pipe,
) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    writer = PipeWriter(write_fd)
    sent = ['{"a": 1}\n', f'{{"big": "{BIG}"}}\n', '{"crlf": 2}\r\n', "\n", '{"last": 3}']
    lines: list[str] = []

    async def read() -> None:
        lines.extend(await read_all(PipeReader(read_fd)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        for text in sent:
            await writer.write(text)
            await writer.flush()
        pipe.end()
    assert lines == ['{"a": 1}', f'{{"big": "{BIG}"}}', '{"crlf": 2}\r', "", '{"last": 3}']


async def test_lines_split_across_reads_and_invalid_utf8(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    reader = PipeReader(read_fd)
    lines = aiter(reader)
    os.write(write_fd, b'{"s": "caf')
    os.write(write_fd, b'\xc3\xa9"}\n{"bad": "\xff"}\n{"t"')
    assert await anext(lines) == '{"s": "café"}'
    assert await anext(lines) == '{"bad": "\ufffd"}'
    os.write(write_fd, b": 1}\n")
    assert await anext(lines) == '{"t": 1}'
    pipe.end()
    with pytest.raises(StopAsyncIteration):
        await anext(lines)


async def test_the_writer_waits_for_the_reader_while_the_pipe_is_full(
    pipe: Pipe,
) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    done = anyio.Event()

    async def write() -> None:
        await PipeWriter(write_fd).write(BIG)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        await anyio.wait_readable(read_fd)
        assert not done.is_set()  # the pipe holds far less than 1 MB
        received = bytearray()
        with anyio.fail_after(10):
            while len(received) < len(BIG):
                await anyio.wait_readable(read_fd)
                received += os.read(read_fd, 1 << 16)
    assert done.is_set() and received == BIG.encode()


def test_a_claimed_pipe_points_elsewhere_then_comes_back_blocking() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with claimed(write_fd, lambda: os.open(os.devnull, os.O_WRONLY)) as private:
            assert private is not None and private > 2
            assert stat.S_ISCHR(os.fstat(write_fd).st_mode)  # the null device meanwhile
            assert not os.get_blocking(private)
            os.write(private, b"wire")
            assert os.read(read_fd, 4) == b"wire"
        assert stat.S_ISFIFO(os.fstat(write_fd).st_mode)
        assert os.get_blocking(write_fd)  # O_NONBLOCK is shared: it must not leak out
        os.write(write_fd, b"back")
        assert os.read(read_fd, 4) == b"back"
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_regular_file_is_left_to_the_sdk(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "in.jsonl", os.O_RDWR | os.O_CREAT)
    try:
        before = os.fstat(fd)
        with claimed(fd, lambda: os.open(os.devnull, os.O_RDONLY)) as private:
            assert private is None
            assert os.fstat(fd).st_ino == before.st_ino
    finally:
        os.close(fd)
