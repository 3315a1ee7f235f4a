"""The one place an aiobotocore S3 client is made from the settings (the driver's, and the
presigner's for blob redirects): credentials, region and addressing style."""

from __future__ import annotations

import contextlib
from typing import Any

from ocireg.storage.s3.settings import S3Settings


def addressing(settings: S3Settings) -> dict[str, str]:
    """The `s3` config entry for path-style or virtual-hosted bucket addresses."""
    return {"addressing_style": "path" if settings.forcepathstyle else "auto"}


async def open_client(
    stack: contextlib.AsyncExitStack,
    settings: S3Settings,
    endpoint: str | None,
    config: Any,
    **options: Any,
) -> Any:
    """A client for `endpoint` with the settings' credentials, closed with `stack`;
    `options` go to `create_client` as they are (`use_ssl`, `verify`)."""
    from aiobotocore.session import get_session

    return await stack.enter_async_context(
        get_session().create_client(
            "s3",
            region_name=settings.region,
            endpoint_url=endpoint,
            aws_access_key_id=settings.accesskey,
            aws_secret_access_key=settings.secretkey,
            aws_session_token=settings.sessiontoken,
            config=config,
            **options,
        )
    )
