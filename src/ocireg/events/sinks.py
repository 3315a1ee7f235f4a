"""The sinks of `extensions.events`, sending as zot's do: HTTP (each event POSTed in
CloudEvents' binary mode: `ce-*` headers, the data as a JSON body) and NATS (each event
published on the sink's subject, `channel`, in CloudEvents' structured mode: one JSON
document with the attributes and the data, no headers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from typing import TYPE_CHECKING, Any

from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from ocireg.events import Sink
from ocireg.settings.events import SinkSettings

if TYPE_CHECKING:
    import aiohttp
    from nats.aio.client import Client as NatsClient


class EventNotTaken(Exception):
    """The sink answered with a status that is not a success."""


def sink_of(settings: SinkSettings) -> Sink:
    return NatsSink(settings) if settings.kind == "nats" else HttpSink(settings)


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
        import aiohttp

        tls = _tls(self.settings)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True),
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class NatsSink:
    """One connection per worker process, opened at the first event (and again after a
    failure); each publish is flushed, so an event the server did not take is an error."""

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self._client: NatsClient | None = None

    def __str__(self) -> str:
        return f"{self.settings.address} {self.settings.channel}"

    async def emit(self, event: CloudEvent) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):  # connecting included
                client = self._client or await self._connect()
                await client.publish(self.settings.channel, JSONFormat().write(event))
                await client.flush(timeout=max(1, round(self.settings.timeout)))
        except Exception:
            await self.close()  # connect again for the next event
            raise

    async def _connect(self) -> NatsClient:
        import nats

        options: dict[str, Any] = {
            "name": "zotregistry.dev",  # as zot names its connection
            "connect_timeout": self.settings.timeout,
            "allow_reconnect": False,  # a lost connection fails the event: the next reconnects
            # nats-py tries a server 60 times, 2 s apart, before its first connection fails
            "max_reconnect_attempts": 1,
        }
        if self.settings.credentials_file:
            options["user_credentials"] = str(self.settings.credentials_file)
        elif self.settings.username:
            options["user"] = self.settings.username
            options["password"] = self.settings.password
        tls = _tls(self.settings)
        if tls is not None:
            options["tls"] = tls
        self._client = await nats.connect(self.settings.address, **options)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing what failed: nothing left to do
                await client.close()


def _tls(settings: SinkSettings) -> ssl.SSLContext | None:
    """A TLS context with the sink's CA and client certificate, None for the defaults."""
    if not (settings.ca_cert or settings.cert):
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_cert) if settings.ca_cert else None)
    if settings.cert and settings.key:
        context.load_cert_chain(settings.cert, settings.key)
    return context
