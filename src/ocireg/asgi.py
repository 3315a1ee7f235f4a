"""Small ASGI helpers that several middlewares share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.types import Message, Scope, Send


def request_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header `name` (lower-case), None when it is absent."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def with_response_headers(send: Send, extra: Sequence[tuple[bytes, bytes]]) -> Send:
    """`send`, with `extra` headers on the response start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), *extra]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def with_response_header(send: Send, name: bytes, value: bytes) -> Send:
    """`send`, with one more header on the response start."""
    return with_response_headers(send, ((name, value),))


def raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Named headers as an ASGI response start carries them (lower-case bytes)."""
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]
