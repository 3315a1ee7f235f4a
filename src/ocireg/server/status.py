"""`GET /v2/_ocireg/cluster`: what this member knows of the cluster, as JSON.

Authenticated like `/metrics` (an `accessControl` with `metrics` rights, or any logged-in
user). Answered by the member that receives it, never forwarded.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.cluster.membership import Membership
from ocireg.cluster.peers import Peers
from ocireg.errors import ErrorCode, RegistryError


def fingerprint(membership: Membership, routing: str = "modulo") -> str:
    """Equal on two members exactly when they route alike."""
    text = "\n".join([routing, *membership.members])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def cluster_status(request: Request) -> Response:
    peers: Peers | None = getattr(request.app.state, "peers", None)
    if peers is None:
        raise RegistryError(ErrorCode.NOT_FOUND, "not a cluster member")
    membership = peers.membership
    members: list[dict[str, Any]] = []
    for index, member in enumerate(membership.members):
        entry: dict[str, Any] = {"member": member, "index": index}
        if index == membership.local_index:
            entry.update(local=True, up=True, shared=True)
        else:
            state = peers.state[index]
            entry.update(
                local=False,
                up=state.up,
                shared=state.shared,
                lastContact=_iso(state.last_contact),
                since=_iso(state.changed),
            )
        members.append(entry)
    body = {
        "member": membership.local_member,
        "index": membership.local_index,
        "routing": "modulo",
        "fingerprint": fingerprint(membership),
        "sharedStorage": {None: "auto", True: True, False: False}[peers.mode],
        "members": members,
    }
    return JSONResponse(body)


def _iso(stamp: float) -> str | None:
    if not stamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
