"""The same `http.auth.ldap` and `http.accessControl` given to zot and to ocireg, over the
same directory (Debian's slapd): the same users get in, with the same groups, and the same
pushes are allowed, denied or refused; the user search one level down (zot's default) and
over the subtree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends import running_slapd
from tests.support.ldap import ACCESS, EXPECTED, answers, fill_directory, ldap_keys
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("subtree", [False, True])
def test_zot_and_ocireg_let_the_same_directory_users_in(tmp_path: Path, subtree: bool) -> None:
    found = {}
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)
        for kind in ("zot", "ocireg"):
            workdir = tmp_path / kind
            workdir.mkdir()
            config = base_config(workdir / "root")
            config["http"]["auth"] = {"ldap": ldap_keys(slapd, workdir, subtreeSearch=subtree)}
            config["http"]["accessControl"] = ACCESS
            proc = zot_or_ocireg(kind, workdir, config)
            proc.start()
            try:
                found[kind] = answers(proc.url)
            finally:
                proc.stop()
    assert found["ocireg"] == found["zot"] == EXPECTED
