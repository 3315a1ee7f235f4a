"""zot's `storage.storageDriver` keys for the S3 driver, with the AWS environment as fallback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

_ENV = {
    "accesskey": "AWS_ACCESS_KEY_ID",
    "secretkey": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "regionendpoint": "AWS_ENDPOINT_URL_S3",
}


@dataclass(frozen=True)
class S3Settings:
    """zot's `storage.storageDriver` keys for S3 (matched case-insensitively)."""

    bucket: str
    rootdirectory: str = ""
    region: str = "us-east-1"
    regionendpoint: str | None = None
    secure: bool = True
    skipverify: bool = False
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    forcepathstyle: bool = False

    @classmethod
    def from_map(cls, raw: dict[str, Any]) -> S3Settings:
        from ocireg.errors import ConfigError

        spec = {str(k).lower(): v for k, v in raw.items()}
        for key, var in _ENV.items():
            if not spec.get(key) and os.environ.get(var):
                spec[key] = os.environ[var]
        if not spec.get("region") and os.environ.get("AWS_DEFAULT_REGION"):
            spec["region"] = os.environ["AWS_DEFAULT_REGION"]
        if not spec.get("sessiontoken") and os.environ.get("AWS_SESSION_TOKEN"):
            spec["sessiontoken"] = os.environ["AWS_SESSION_TOKEN"]
        if not spec.get("bucket"):
            raise ConfigError("storage.storageDriver.bucket", "required for the s3 driver")
        flags = {}
        for key in ("secure", "skipverify", "forcepathstyle"):
            if key in spec:
                value = spec[key]
                if isinstance(value, str):
                    value = value.lower() in ("1", "true", "yes")
                if not isinstance(value, bool):
                    raise ConfigError(f"storage.storageDriver.{key}", "expected a boolean")
                flags[key] = value
        return cls(
            bucket=str(spec["bucket"]),
            rootdirectory=str(spec.get("rootdirectory") or ""),
            region=str(spec.get("region") or "us-east-1"),
            regionendpoint=spec.get("regionendpoint") or None,
            accesskey=spec.get("accesskey") or None,
            secretkey=spec.get("secretkey") or None,
            sessiontoken=spec.get("sessiontoken") or None,
            **flags,
        )

    @property
    def endpoint(self) -> str | None:
        url = self.regionendpoint
        if url and "://" not in url:
            url = ("https://" if self.secure else "http://") + url
        return url

    @property
    def prefix(self) -> str:
        """The bucket key prefix, rootdirectory doubled as zot does (with a trailing /)."""
        root = self.rootdirectory.strip("/")
        return f"{root}/{root}/" if root else ""
