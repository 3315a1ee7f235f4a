"""Byte-level storage drivers. They know paths and bytes, nothing about registries."""

from ocireg.storage.base import (
    Draft,
    FileInfo,
    FileWriter,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    StorageUnavailable,
)
from ocireg.storage.sessions import FileSessions, SessionStore

__all__ = [
    "Draft",
    "FileInfo",
    "FileSessions",
    "FileWriter",
    "InvalidPath",
    "PathNotFound",
    "SessionStore",
    "StorageDriver",
    "StorageError",
    "StorageUnavailable",
]
