"""Responses that come before the request body is read (an error, a GET that carries a
body): the connection still serves the client's next request, or the response says
`Connection: close` (server/unread.py). Without that, the server closed such a connection
after the response without saying so, and the client's next request on it failed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ocireg.server.unread import DRAIN_LIMIT
from tests.process.conftest import StartRegistry
from tests.support.rawhttp import SocketResponse, read_response, start_request
from tests.support.server import RegistryProcess


@pytest.fixture
def registry(start_registry: StartRegistry) -> Iterator[RegistryProcess]:
    yield start_registry(workers=1)


def next_request(sock: socket.socket) -> SocketResponse:
    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return read_response(sock)


def closed(sock: socket.socket) -> bool:
    return sock.recv(1) == b""


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/v2/", 200),  # a body nobody reads
        ("PUT", "/v2/unread/manifests/v1", 400),  # refused before its body is read
        ("GET", "/v2/unread/blobs/sha256:" + "0" * 64, 404),
    ],
)
def test_a_body_that_arrives_after_the_head_is_read_and_the_connection_kept(
    registry: RegistryProcess, method: str, target: str, status: int
) -> None:
    body = b"x" * 1000
    headers = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
    with start_request(registry.port, method, target, headers) as sock:
        # The head alone first, the body once the server has had time to answer without it.
        with pytest.raises(TimeoutError):
            sock.settimeout(0.3)
            sock.recv(1)
        sock.settimeout(15)
        sock.sendall(body)
        first = read_response(sock)
        assert first.status == status
        assert first.headers.get("connection") != "close"
        assert next_request(sock).status == 200


def test_a_body_that_never_comes_gets_connection_close(registry: RegistryProcess) -> None:
    headers = {"Content-Length": "1000"}
    with start_request(registry.port, "GET", "/v2/", headers) as sock:
        first = read_response(sock)
        assert first.status == 200
        assert first.headers.get("connection") == "close"
        assert closed(sock)


def test_a_long_unread_body_gets_connection_close_at_once(registry: RegistryProcess) -> None:
    headers = {"Content-Length": str(DRAIN_LIMIT * 4)}
    with start_request(registry.port, "GET", "/v2/", headers, body=b"x" * 1000) as sock:
        first = read_response(sock)
        assert first.status == 200
        assert first.headers.get("connection") == "close"
        assert closed(sock)
