"""HTTP/1.1 by hand over a socket, for tests that need what ``requests`` hides: pipelining, half-sent requests,
``Expect: 100-continue``, a client that never reads."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def connect(url: str, timeout: float = 10.0, receive_buffer: int | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    if receive_buffer is not None:  # before connect, so the TCP window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    sock.connect((parts.hostname, parts.port))
    return sock


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    all_headers = {"Content-Length": str(len(body))} if body or method in ("POST", "PUT") else {}
    all_headers.update(headers or {})
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(stream: BinaryIO) -> RawResponse | None:
    """One response from a buffered reader of the socket; None if the connection closed before a status line."""
    line = stream.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if status < 200:
        return RawResponse(status, headers, b"")
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            size = int(stream.readline().split(b";")[0], 16)
            if size == 0:
                stream.readline()
                break
            body += stream.read(size)
            stream.readline()
        return RawResponse(status, headers, bytes(body))
    return RawResponse(status, headers, stream.read(int(headers.get("content-length", "0"))))


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Read until the peer closes (True) or ``timeout`` passes without that (False)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True
