"""Status and byte counts of one request, as seen through its ASGI receive and send.

Shared by the access log and the metrics, so both count the same way, including responses
that Granian sends itself from a file (pathsend), whose size is their Content-Length.
"""

from __future__ import annotations

from starlette.types import Message, Receive


class Traffic:
    __slots__ = ("_length", "bytes_in", "bytes_out", "status")

    def __init__(self) -> None:
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._length = 0

    def counting(self, receive: Receive) -> Receive:
        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.bytes_in += len(message.get("body", b""))
            return message

        return counting_receive

    def sent(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self._length = _content_length(message)
        elif kind == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
        elif kind == "http.response.pathsend":
            self.bytes_out += self._length


def _content_length(message: Message) -> int:
    for key, value in message.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
