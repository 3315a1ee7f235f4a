"""The S3 driver's settings: zot's `storage.storageDriver` keys, typed by `load_config`
(`ocireg.settings.drivers` holds the parser)."""

from __future__ import annotations

from ocireg.settings.drivers import S3Settings

__all__ = ["S3Settings"]
