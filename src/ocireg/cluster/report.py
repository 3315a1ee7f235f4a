"""`ocireg cluster status CONFIG`: ask every member listed in CONFIG what it knows of the
cluster (`GET /v2/_ocireg/cluster`) and print one table.

A member that does not answer, or whose routing fingerprint differs from the one CONFIG
describes, is flagged, and the command exits 1.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ocireg.cluster.membership import Membership
from ocireg.cluster.tls import client_ssl_context
from ocireg.config import Config

TIMEOUT = 5.0


@dataclass
class MemberView:
    member: str
    status: dict[str, Any] | None  # its /v2/_ocireg/cluster answer
    error: str | None = None


def ask(config: Config, member: str, user: str | None) -> MemberView:
    scheme = "https" if config.http.tls else "http"
    request = urllib.request.Request(f"{scheme}://{member}/v2/_ocireg/cluster")
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    try:
        with urllib.request.urlopen(
            request, timeout=TIMEOUT, context=client_ssl_context(config)
        ) as response:
            return MemberView(member, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return MemberView(member, None, f"HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        return MemberView(member, None, f"{type(exc).__name__}: {exc}")


def report(config: Config, user: str | None = None) -> tuple[str, bool]:
    """The table, and whether every member answered and routes as CONFIG says."""
    assert config.cluster is not None
    expected = Membership(
        config.cluster.members, 0, config.cluster.hash_key, config.cluster.routing
    ).fingerprint
    views = [ask(config, member, user) for member in config.cluster.members]
    rows = [("MEMBER", "ANSWERS", "FINGERPRINT", "AGREES", "SEES UP", "SHARED", "OWNS")]
    healthy = True
    for view in views:
        if view.status is None:
            healthy = False
            rows.append((view.member, f"no: {view.error}", "-", "-", "-", "-", "-"))
            continue
        status = view.status
        agrees = status.get("fingerprint") == expected
        healthy = healthy and agrees
        peers = status.get("members", [])
        mine: dict[str, Any] = next((m for m in peers if m.get("local")), {})
        rows.append(
            (
                view.member,
                "yes",
                str(status.get("fingerprint")),
                "yes" if agrees else "NO",
                f"{sum(bool(m.get('up')) for m in peers)}/{len(peers)}",
                f"{sum(bool(m.get('shared')) for m in peers)}/{len(peers)}",
                str(mine.get("repositories", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    summary = f"routing {config.cluster.routing}, expected fingerprint {expected}: " + (
        "every member answers and agrees" if healthy else "PROBLEMS (see above)"
    )
    return "\n".join([*lines, summary]), healthy
