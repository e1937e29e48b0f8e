"""Bodies and connections have bounds, tried on a real `portald run` over raw sockets (an HTTP
client would not send these bytes): a chunked body past the limit gets 413 whatever the route,
and a connection that sends its headers or its body too slowly is closed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from daemon.db.embedded import free_port
from tests.support.config import portal_sections, write_config
from tests.support.daemon import start_daemon, wait_healthy
from tests.support.db import clone

HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 3
CLOSED_WITHIN_S = 20  # far beyond the timeouts: the test waits for the close, it does not time it


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def daemon_port(pg_server: str, demo_template_dsn: str,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    """One daemon with short timeouts for the module's tests, on its own demo database."""
    directory = tmp_path_factory.mktemp("connections")
    async with clone(pg_server, demo_template_dsn, "connections") as dsn:
        port = free_port()
        sections = portal_sections(directory, dsn, free_port(), http_port=port)
        sections["http"].update(header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S)
        proc = await start_daemon(write_config(directory / "config.toml", sections))
        try:
            await wait_healthy(port, proc)
            yield port
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
            log = (await proc.stderr.read()).decode()
            assert "Traceback" not in log, log


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    async with asyncio.timeout(CLOSED_WITHIN_S):
        return await reader.read()


async def test_partial_headers_are_closed(daemon_port: int) -> None:
    reader, writer = await _connect(daemon_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    assert await _closed(reader) == b""
    writer.close()


async def test_trickled_headers_are_closed(daemon_port: int) -> None:
    reader, writer = await _connect(daemon_port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")

    async def trickle() -> None:
        for _ in range(4 * CLOSED_WITHIN_S):
            writer.write(b"X")  # one byte of a header line, now and then: a slow loris
            await asyncio.sleep(0.25)

    task = asyncio.create_task(trickle())
    try:
        assert await _closed(reader) == b""
    finally:
        task.cancel()
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(daemon_port: int) -> None:
    reader, writer = await _connect(daemon_port)
    assert await _closed(reader) == b""
    writer.close()


async def test_a_trickled_body_is_closed(daemon_port: int) -> None:
    reader, writer = await _connect(daemon_port)
    writer.write(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 200\r\n\r\n{\"username\": ")

    async def trickle() -> None:
        for _ in range(4 * CLOSED_WITHIN_S):
            writer.write(b" ")
            await asyncio.sleep(0.25)

    task = asyncio.create_task(trickle())
    try:
        assert await _closed(reader) == b""
    finally:
        task.cancel()
        writer.close()


async def test_requests_within_the_limits_are_served_on_one_connection(daemon_port: int) -> None:
    reader, writer = await _connect(daemon_port)
    body = b'{"username": "nobody", "password": "wrong"}'
    for _ in range(2):
        writer.write(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        await asyncio.sleep(0.3)
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
        await asyncio.sleep(0.3)
        writer.write(body[10:])
        assert (await reader.readline()).startswith(b"HTTP/1.1 401")
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    writer.close()


def _chunked_post(port: int, path: str, content_type: bytes, total: int) -> bytes:
    """POST `total` bytes in chunks; what the server answered (it may stop reading early)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN_S)
    try:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" % (path.encode(), content_type))
        chunk = b"[" * 65536 if content_type == b"application/json" else b"a" * 65536
        try:
            for _ in range(total // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the end: what we want
        answer = b""
        while data := sock.recv(65536):
            answer += data
            if b"\r\n\r\n" in answer:
                break
        return answer
    finally:
        sock.close()


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/v1/login", b"application/json"),
    ("/api/v1/me/password", b"application/json"),
    ("/login", b"application/x-www-form-urlencoded"),
    ("/tickets/new", b"application/x-www-form-urlencoded"),
    ("/api/v1/tickets", b"application/json"),
])
async def test_a_chunked_body_past_the_limit_gets_413(daemon_port: int, path: str,
                                                      content_type: bytes) -> None:
    answer = await asyncio.to_thread(_chunked_post, daemon_port, path, content_type, 15 * 1024 * 1024)
    status = answer.split(b"\r\n", 1)[0]
    # a route behind a login answers 401 first (nothing of the body is read for it)
    assert status.startswith((b"HTTP/1.1 413", b"HTTP/1.1 401", b"HTTP/1.1 303")), answer[:300]
    if path in ("/api/v1/login", "/login"):
        assert status.startswith(b"HTTP/1.1 413"), answer[:300]
