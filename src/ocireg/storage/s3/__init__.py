"""The S3 storage driver: `settings` reads zot's keys, `driver` holds the object operations,
`sessions` the resumable upload sessions (a mixin of the driver), `writer` the part uploads."""

from ocireg.storage.s3.driver import S3Driver
from ocireg.storage.s3.settings import S3Settings
from ocireg.storage.s3.writer import S3Writer

__all__ = ["S3Driver", "S3Settings", "S3Writer"]
