"""The S3 storage driver and its upload sessions: `settings` reads zot's keys, `client` is the
S3 client object they share, `driver` holds the object operations, `state` the resumable
writer's state object, `writer` the part uploads, `register` and `sessions` the upload
sessions (`SessionStore`)."""

from ocireg.storage.s3.driver import S3Driver
from ocireg.storage.s3.sessions import S3Sessions
from ocireg.storage.s3.settings import S3Settings
from ocireg.storage.s3.writer import S3Writer

__all__ = ["S3Driver", "S3Sessions", "S3Settings", "S3Writer"]
