"""A part's buffer, sent by aiohttp without copying it.

A part is a `PartBuffer` (`writer.py` fills one and reuses it for a later part once sent). To
botocore it is a `bytearray`: its parameter check takes it, the signature hashes it, a retry
sends it again. aiohttp would copy it twice: its `BytesPayload` cuts the body to the
Content-Length (a copy for a bytearray, not for bytes), and its writer joins the request's
buffered headers with the first piece of the body into one write, with `b"".join` before
Python 3.12.9 (the whole part copied into fresh memory, held until sent). `PartPayload`
sends the headers first and then the buffer through a memoryview: no copy at all.
"""

from __future__ import annotations

from typing import Any

from aiohttp.payload import PAYLOAD_REGISTRY, BytesPayload


class PartBuffer(bytearray):
    """A part's bytes, sent by `PartPayload`."""


class PartPayload(BytesPayload):
    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        send_headers = getattr(writer, "send_headers", None)  # aiohttp >= 3.12 buffers them
        if send_headers is not None:
            send_headers()
        await writer.write(view)


PAYLOAD_REGISTRY.register(PartPayload, PartBuffer)
