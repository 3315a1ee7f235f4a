"""Byte-level storage drivers. They know paths and bytes, nothing about registries."""

from ocireg.storage.base import (
    FileInfo,
    FileWriter,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "FileInfo",
    "FileWriter",
    "InvalidPath",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
    "StorageUnavailable",
]
