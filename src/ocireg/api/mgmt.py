"""zot's `mgmt` extension, `GET /v2/_zot/ext/mgmt`: what a client needs to know before it
logs in, as zot answers it. zui reads it to draw its login page (a password form, the
OpenID providers' buttons), `zli server info` to print the server's versions.

As in zot v2.1.20, it is routed when `extensions.search` is on (zot's `extensions.mgmt`
key changes nothing there either), listed by `/v2/_oci/ext/discover`, and open to anyone:
it tells which ways of logging in exist, never a path, an address or a secret. Its answer
is zot's stripped configuration:

  {"distSpecVersion", "commit", "releaseTag", "binaryType",
   "http": {"auth": {"htpasswd": {}, "bearer": {"realm", "service"},
                     "openid": {"providers": {<key>: {"name"}}}, "apikey": true}}}

`htpasswd: {}` stands for Basic credentials (an htpasswd file or LDAP); each part is there
only when configured (`openid` only with `extensions.ui` too, which serves those logins), and
`auth` only when `http.auth` sets anything.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg import __version__
from ocireg.config import Config
from ocireg.settings.auth import AuthSettings
from ocireg.target import Endpoint

MGMT_PATH = "/v2/_zot/ext/mgmt"


def mgmt_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """The route to add to the API's table: none unless `extensions.search` is on."""
    if not config.search.enabled:
        return {}
    answer = stripped_config(config)

    async def mgmt(request: Request) -> Response:
        return JSONResponse(answer)

    return {(Endpoint.MGMT, "GET"): mgmt}


def stripped_config(config: Config) -> dict[str, Any]:
    """What `GET /v2/_zot/ext/mgmt` answers for `config`."""
    http: dict[str, Any] = {}
    auth = _auth(config.auth, openid_served=config.ui.enabled)
    if auth is not None:
        http["auth"] = auth
    return {
        "distSpecVersion": config.dist_spec_version,
        "commit": "",
        "releaseTag": f"ocireg-{__version__}",
        "binaryType": _binary_type(config),
        "http": http,
    }


def _auth(settings: AuthSettings, openid_served: bool) -> dict[str, Any] | None:
    """`openid_served`: whether the OpenID logins are routed (with the web pages, ui/openid.py);
    a provider is offered only where a client can log in with it."""
    configured = (
        settings.logins
        or settings.bearer is not None
        or settings.openid is not None
        or settings.apikey
        or settings.fail_delay > 0
    )
    if not configured:
        return None
    auth: dict[str, Any] = {}
    if settings.logins:
        auth["htpasswd"] = {}
    if settings.bearer is not None:
        bearer = {"realm": settings.bearer.realm, "service": settings.bearer.service}
        auth["bearer"] = {key: value for key, value in bearer.items() if value}
    if openid_served and settings.openid is not None and settings.openid.providers:
        providers = settings.openid.providers.items()
        auth["openid"] = {
            "providers": {
                key: {"name": p.display_name} if p.display_name else {} for key, p in providers
            }
        }
    if settings.apikey:
        auth["apikey"] = True
    return auth


def _binary_type(config: Config) -> str:
    """zot names its build's extensions (`-sync-search-...-mgmt`); here: those on."""
    on = [
        ("sync", config.sync.enabled),
        ("search", config.search.enabled),
        ("scrub", config.scrub.enabled),
        ("metrics", config.metrics.enabled),
        ("lint", bool(config.lint.mandatory_annotations)),
        ("ui", config.ui.enabled),
        ("mgmt", True),
    ]
    return "".join(f"-{name}" for name, enabled in on if enabled)
