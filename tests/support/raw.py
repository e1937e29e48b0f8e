"""HTTP over a raw socket, for the bytes an HTTP client refuses to send (header values that
are not UTF-8, malformed bodies) and for answers it would hide."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(port: int, request: bytes, *, timeout: float = 30) -> RawReply:
    """Send `request` as it is (Connection: close is up to the caller) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            else:
                body = await reader.read()
        return RawReply(int(lines[0].split()[1]), headers, body)
    finally:
        writer.close()


def http(method: str, path: str, *headers: bytes, body: bytes = b"") -> bytes:
    """A request as bytes; each header a `Name: value` line as bytes."""
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: portal.test", b"Connection: close",
            *headers]
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body
