"""HTTP Basic credentials checked against an LDAP directory, as zot's `http.auth.ldap`.

For each credential not verified lately (`auth.remembered`): connect (LDAPS unless
`insecure`, then StartTLS with `startTLS`), bind as the service account (from
`credentialsFile`; anonymously without one), look the user up under `baseDN` by
`userAttribute` (and `userFilter`), one level down or, with `subtreeSearch`, the whole
subtree, then bind as the one entry found with the password given. The values of the
entry's `userGroupAttribute` are the user's groups, for `http.accessControl` (beside the
groups it names itself), as in zot. ldap3 is synchronous: each check runs in a thread.

The web pages keep no password (`ocireg.ui.session`): a page of a user who logged in through
the directory asks `lookup`, which finds the entry with the service account alone and reads
its groups again, so a user removed from the directory, or whose groups changed, is seen.

Chosen where zot differs: a verified credential, and a lookup, is remembered for a minute
(zot binds on every request), so an account disabled in the directory keeps working that long.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from ocireg.auth.core import DirectoryDown
from ocireg.auth.remembered import Remembered
from ocireg.errors import ConfigError
from ocireg.settings.auth import LdapSettings

log = logging.getLogger("ocireg.auth")
TIMEOUT = 10  # seconds to connect, and for each answer (ldap3 wants whole seconds)
DEADLINE = 3 * TIMEOUT  # seconds for a whole check (connect, bind, search, bind)
THREADS = 4  # checks run at once, per worker process
CHECKS_WAITING = (
    16  # checks in progress (running or waiting for a thread) past which more are refused
)


def read_credentials(path: Path) -> tuple[str, str]:
    """zot's LDAP credentials file: a JSON map with `bindDN` and `bindPassword` (keys
    matched case-insensitively, as zot reads them)."""
    where = "http.auth.ldap.credentialsFile"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(where, f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(where, f"{path}: expected a map with bindDN and bindPassword")
    fields = {str(k).lower(): v for k, v in doc.items()}
    dn, password = fields.get("binddn", ""), fields.get("bindpassword", "")
    if not isinstance(dn, str) or not isinstance(password, str):
        raise ConfigError(where, f"{path}: bindDN and bindPassword are strings")
    return dn, password


Groups = tuple[str, ...]


class Ldap:
    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        credentials = settings.credentials_file
        self.service = read_credentials(credentials) if credentials else ("", "")
        if settings.ca_cert is not None:
            _check_ca(settings.ca_cert)
        self.tls = ldap3.Tls(
            validate=ssl.CERT_NONE if settings.skip_verify else ssl.CERT_REQUIRED,
            ca_certs_file=str(settings.ca_cert) if settings.ca_cert else None,
            sni=None if _is_ip(settings.address) else settings.address,  # as zot's ServerName
        )
        self._remembered: Remembered[Groups] = Remembered()
        # Lookups for the pages' sessions, by user name alone (no password is involved).
        self._looked_up: Remembered[Groups] = Remembered()
        # Checks run in threads of their own, a few at once: a directory that is slow or
        # down must not take the threads the storage and htpasswd use. Past CHECKS_WAITING
        # checks in progress, new ones are refused rather than queued.
        self._threads: ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(CHECKS_WAITING)

    async def check(self, user: str, password: str) -> Groups | None:
        """The user's groups from the directory when the credentials are good, else None;
        DirectoryDown when the directory did not answer."""
        if not password:  # an empty password binds anonymously (RFC 4513, 5.1.2): refused
            return None
        return await self._remembered.check(user, password, lambda: self._ask(user, password))

    async def lookup(self, user: str) -> Groups | None:
        """The groups of the one entry the user's name finds (as `check` finds it, with the
        service account, without binding as the user), None when there is no such entry
        (any more); DirectoryDown when the directory did not answer."""
        return await self._looked_up.check(user, "", lambda: self._ask(user, None))

    async def _ask(self, user: str, password: str | None) -> Groups | None:
        if self._slots.locked():
            log.warning("LDAP checks refused: the directory is behind", extra={"user": user})
            raise DirectoryDown("too many LDAP checks in progress")
        async with self._slots:
            if self._threads is None:  # made in the worker process (Granian forks them)
                self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="ocireg-ldap")
            work = asyncio.get_running_loop().run_in_executor(
                self._threads, self._search, user, password
            )
            try:
                return await asyncio.wait_for(work, DEADLINE)
            except TimeoutError:
                log.error("LDAP check took too long", extra={"address": self.settings.address})
                raise DirectoryDown("the LDAP check took too long") from None

    def _search(self, user: str, password: str | None) -> Groups | None:
        """In a thread: the groups of the user's one entry, after binding as it with
        `password` (None: no bind as the user, a lookup)."""
        s = self.settings
        dn, secret = self.service
        # A server object of its own per check: ldap3's keeps state (addresses it found
        # unreachable) that threads must not share.
        server = ldap3.Server(
            s.address,
            port=s.port,
            use_ssl=s.uses_ldaps,
            tls=self.tls,
            connect_timeout=TIMEOUT,
            get_info=ldap3.NONE,  # no schema reads: attribute names go to the server as given
        )
        try:
            with ldap3.Connection(
                server,
                user=dn or None,
                password=secret or None,
                authentication=ldap3.SIMPLE if dn else ldap3.ANONYMOUS,
                receive_timeout=TIMEOUT,
                auto_bind=ldap3.AUTO_BIND_NONE,  # bound below, after StartTLS
                auto_referrals=False,  # never take credentials to a host a referral names
            ) as connection:
                connection.open()
                if s.insecure and s.start_tls:
                    connection.start_tls()
                if not connection.bind():
                    log.error(
                        "LDAP bind as the service account failed",
                        extra={"bindDN": dn, "result": connection.result.get("description")},
                    )
                    raise DirectoryDown("the directory refused the service account")
                group = s.user_group_attribute
                connection.search(
                    s.base_dn,
                    self._filter(user),
                    search_scope=ldap3.SUBTREE if s.subtree_search else ldap3.LEVEL,
                    attributes=[group] if group else [],
                )
                entries = [
                    e for e in connection.response or [] if e.get("type") == "searchResEntry"
                ]
                if len(entries) != 1:  # none, or several: zot refuses both
                    return None
                found = entries[0]
                values = found.get("attributes", {}).get(group, []) if group else []
                groups = tuple(str(v) for v in (values if isinstance(values, list) else [values]))
                if password is not None and not connection.rebind(
                    user=found["dn"], password=password
                ):
                    return None
                return groups
        except (LDAPException, OSError) as exc:  # the directory cannot answer
            log.error("LDAP check failed", extra={"address": s.address, "error": str(exc)})
            raise DirectoryDown(str(exc)) from None

    def _filter(self, user: str) -> str:
        own = f"({self.settings.user_attribute}={escape_filter_chars(user)})"
        extra = self.settings.user_filter
        if not extra:
            return own
        return f"(&{own}{extra if extra.startswith('(') else f'({extra})'})"


def _check_ca(path: Path) -> None:
    """`caCert` must be PEM certificates the TLS library reads: said at start, not at each
    login that then fails."""
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("http.auth.ldap.caCert", f"cannot use {path}: {exc}") from None


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
