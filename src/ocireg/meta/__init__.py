"""Metadata store: what must be shared and fast, rebuilt from storage whenever it is lost."""

from ocireg.meta.base import MetaStore, MetaUnavailable, Push, SearchStamps

__all__ = ["MetaStore", "MetaUnavailable", "Push", "SearchStamps"]
