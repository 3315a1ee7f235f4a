"""The one place where storage-driver and metadata-store errors become OCI errors.

`boundary` marks the classes the layers above call (the image store, its blobs and its
uploads): every public coroutine or async generator of theirs raises `RegistryError` and
nothing else, so the client, the access log and the metrics all see one status.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, TypeVar

from ocireg.errors import ErrorCode, RegistryError
from ocireg.meta import MetaUnavailable
from ocireg.storage import InvalidPath, PathNotFound, StorageError, StorageUnavailable

C = TypeVar("C", bound=type)
_BACKEND_ERRORS = (StorageError, MetaUnavailable)


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


def boundary(cls: C) -> C:
    """Wrap the public async methods of `cls` so backend errors leave as RegistryErrors."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(member):
            setattr(cls, name, _coroutine(member))
        elif inspect.isasyncgenfunction(member):
            setattr(cls, name, _generator(member))
    return cls


def _coroutine(
    method: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except _BACKEND_ERRORS as exc:
            raise as_registry_error(exc) from exc

    return wrapper


def _generator(
    method: Callable[..., AsyncGenerator[Any, None]],
) -> Callable[..., AsyncGenerator[Any, None]]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return mapped(method(*args, **kwargs))

    return wrapper


async def mapped(items: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    """The items of `items` (closed with it), its backend errors raised as RegistryErrors:
    for a stream that a `boundary` method hands out rather than yields."""
    try:
        async with contextlib.aclosing(items) as inner:
            async for item in inner:
                yield item
    except _BACKEND_ERRORS as exc:
        raise as_registry_error(exc) from exc
