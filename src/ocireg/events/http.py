"""The HTTP sink of `extensions.events`: each event POSTed in CloudEvents' binary mode
(`ce-*` headers, the data as a JSON body), as zot's sink sends it."""

from __future__ import annotations

import base64
import ssl

import aiohttp
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from ocireg.settings.events import SinkSettings


class EventNotTaken(Exception):
    """The sink answered with a status that is not a success."""


class HttpSink:
    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        headers = dict(settings.headers)
        if settings.username:
            pair = f"{settings.username}:{settings.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif settings.token:
            headers["Authorization"] = "Bearer " + settings.token
        self.headers = headers
        self._session: aiohttp.ClientSession | None = None

    def __str__(self) -> str:
        return self.settings.address

    async def emit(self, event: CloudEvent) -> None:
        if self.settings.channel:
            event = CloudEvent(
                attributes={**event.get_attributes(), "channel": self.settings.channel},
                data=event.get_data(),
            )
        message = to_binary_event(event)
        session = self._session or self._open()
        async with session.post(
            self.settings.address,
            data=message.body,
            headers={**message.headers, **self.headers},
            proxy=self.settings.proxy or None,
        ) as response:
            await response.read()
            if response.status >= 300:
                raise EventNotTaken(f"{self.settings.address} answered {response.status}")

    def _open(self) -> aiohttp.ClientSession:
        tls: ssl.SSLContext | None = None
        if self.settings.ca_cert or self.settings.cert:
            ca = str(self.settings.ca_cert) if self.settings.ca_cert else None
            tls = ssl.create_default_context(cafile=ca)
            if self.settings.cert and self.settings.key:
                tls.load_cert_chain(self.settings.cert, self.settings.key)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True),
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
