"""`GET /v2/_ocireg/cluster`: what this member knows of the cluster, as JSON.

Authenticated like `/metrics` (an `accessControl` with `metrics` rights, or any logged-in
user). Answered by the member that receives it, never forwarded.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.cluster.peers import Peers
from ocireg.errors import ErrorCode, RegistryError


async def cluster_status(request: Request) -> Response:
    peers: Peers | None = getattr(request.app.state, "peers", None)
    if peers is None:
        raise RegistryError(ErrorCode.NOT_FOUND, "not a cluster member")
    # One list for the whole answer, even if a new one is applied during the walk below.
    membership, states = peers.membership, peers.state
    # How many repositories each member owns: a walk of the catalog (its cost grows with
    # the number of repositories; this is an operator's page, not a client's).
    owned = Counter(membership.owner_of(repo) for repo in await request.app.state.store.catalog())
    members: list[dict[str, Any]] = []
    for index, member in enumerate(membership.members):
        entry: dict[str, Any] = {"member": member, "index": index, "repositories": owned[index]}
        # By address, as the peers' states are kept: a list naming this member twice (two
        # entries with its address) has no peer state for either entry.
        if member == membership.local_member:
            entry.update(local=True, up=True, shared=True, fingerprint=membership.fingerprint)
        else:
            state = states[member]
            entry.update(
                local=False,
                up=state.up,
                shared=state.shared,
                fingerprint=state.fingerprint,
                agrees=state.agrees(membership.fingerprint),
                lastContact=_iso(state.last_contact),
                since=_iso(state.changed),
            )
        members.append(entry)
    body = {
        "member": membership.local_member,
        "index": membership.local_index,
        "routing": membership.routing,
        "fingerprint": membership.fingerprint,
        "sharedStorage": {None: "auto", True: True, False: False}[peers.mode],
        "members": members,
    }
    return JSONResponse(body)


def _iso(stamp: float) -> str | None:
    if not stamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
