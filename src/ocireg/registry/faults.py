"""The one place where storage-driver errors become OCI errors."""

from __future__ import annotations

from ocireg.errors import ErrorCode, RegistryError
from ocireg.meta import MetaUnavailable
from ocireg.storage import InvalidPath, PathNotFound, StorageError, StorageUnavailable


def as_registry_error(exc: StorageError | MetaUnavailable) -> RegistryError:
    if isinstance(exc, MetaUnavailable):
        return RegistryError(ErrorCode.UNAVAILABLE, "metadata store unavailable", str(exc))
    if isinstance(exc, StorageUnavailable):
        return RegistryError(ErrorCode.UNAVAILABLE, "storage unavailable", str(exc))
    if isinstance(exc, InvalidPath):
        return RegistryError(ErrorCode.NAME_INVALID, detail={"path": exc.path[:300]})
    if isinstance(exc, PathNotFound):
        # Handlers translate expected absences; this one vanished in a race with a delete.
        return RegistryError(ErrorCode.NOT_FOUND, "content removed while being served")
    return RegistryError(ErrorCode.UNAVAILABLE, "storage error", str(exc))
