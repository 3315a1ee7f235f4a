"""The registry: distribution-spec semantics over a storage driver, independent of HTTP."""

from ocireg.registry.store import ImageStore, PutResult, StoredManifest

__all__ = ["ImageStore", "PutResult", "StoredManifest"]
