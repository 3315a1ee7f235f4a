"""Status and byte counts of one request, as seen through its ASGI receive and send.

Shared by the access log and the metrics, so both count the same way.
"""

from __future__ import annotations

from starlette.types import Message, Receive


class Traffic:
    __slots__ = ("bytes_in", "bytes_out", "status")

    def __init__(self) -> None:
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0

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
        elif kind == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
