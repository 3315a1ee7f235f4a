"""zot's `claimMapping` for workload identity (auth/claims.py): CEL over a token's claims,
in-process (the tokens' verification is tested over HTTP in tests/auth/test_bearer_oidc.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ocireg.auth.claims import ClaimMapper, ClaimsRefused
from ocireg.errors import ConfigError
from ocireg.settings.bearer_oidc import ClaimMapping, ClaimValidation, ClaimVariable

K8S = {
    "iss": "https://kubernetes.default.svc",
    "sub": "system:serviceaccount:flux-system:source-controller",
    "aud": ["zot"],
    "kubernetes.io/serviceaccount/namespace": "flux-system",
    "email": "Builder@Example.com",
    "groups": ["ci", "deploy"],
    "ref": "refs/heads/main",
    "owner": "my-org",
}


def mapped(claims: dict[str, Any] = K8S, **mapping: Any) -> tuple[str, tuple[str, ...]]:
    return ClaimMapper(ClaimMapping(**mapping), "oidc[0]").map(claims)


def test_default_is_issuer_slash_subject_without_groups() -> None:
    assert mapped() == (f"{K8S['iss']}/{K8S['sub']}", ())


def test_zot_readme_expressions() -> None:
    namespace = "claims['kubernetes.io/serviceaccount/namespace']"
    assert mapped(username=namespace)[0] == "flux-system"
    assert mapped(username="claims.email.split('@')[0].lowerAscii()")[0] == "builder"
    assert mapped(username="claims.sub", groups="claims.groups")[1] == ("ci", "deploy")
    assert mapped(username="claims.sub", groups="['github-actions', 'ci']")[1] == (
        "github-actions",
        "ci",
    )


def test_variables_and_validations() -> None:
    variables = (
        ClaimVariable("ns", "claims['kubernetes.io/serviceaccount/namespace']"),
        ClaimVariable("who", "vars.ns + ':' + claims.sub.split(':')[3]"),
    )
    ok = (
        ClaimValidation("claims.owner in ['my-org', 'other']", "wrong org"),
        ClaimValidation("claims.ref.startsWith('refs/heads/')", "a branch only"),
    )
    assert mapped(variables=variables, validations=ok, username="vars.who")[0] == (
        "flux-system:source-controller"
    )
    refused = (ClaimValidation("claims.owner == 'someone-else'", "only someone-else's"),)
    with pytest.raises(ClaimsRefused, match="only someone-else's"):
        mapped(validations=refused)


@pytest.mark.parametrize(
    "mapping",
    [
        {"username": "claims.missing"},  # a claim the token lacks
        {"username": "claims.groups"},  # not a string
        {"username": "''"},  # empty
        {"username": "claims.sub", "groups": "claims.email"},  # not a list
        {"username": "claims.sub + 1"},  # no such overload
        {"validations": (ClaimValidation("claims.sub", "not a boolean"),)},
    ],
)
def test_what_gives_no_identity_refuses(mapping: dict[str, Any]) -> None:
    with pytest.raises(ClaimsRefused):
        mapped(**mapping)


def test_a_syntax_error_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"oidc\[0\]\.claimMapping\.groups"):
        ClaimMapper(ClaimMapping(groups="claims.groups +"), "oidc[0]")
