"""The typed `http.auth` and `http.accessControl` sections, for the auth package.

They are parsed with the rest of the file by `load_config` (`ocireg.settings.auth` holds
the parser); this module names them where the auth code looks for them.
"""

from __future__ import annotations

from ocireg.config import Config
from ocireg.settings.auth import (
    ACTIONS,
    AccessControlSettings,
    AuthSettings,
    BearerSettings,
    Policy,
    RepositoryRules,
)

__all__ = [
    "ACTIONS",
    "AccessControlSettings",
    "AuthSettings",
    "BearerSettings",
    "Policy",
    "RepositoryRules",
    "auth_settings",
]


def auth_settings(config: Config) -> AuthSettings:
    """The typed auth sections of `config` (files are not read here; see `check_auth`)."""
    return config.auth
