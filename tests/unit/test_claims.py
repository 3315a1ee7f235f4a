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
        {"username": "claims.sub + 1"},  # no such overload (found when evaluated: dyn)
        {"username": "claims.uid + 1"},  # a JSON number is a double, as at zot
        {"username": "claims.sub", "groups": "[claims.uid]"},  # not strings
    ],
)
def test_what_gives_no_identity_refuses(mapping: dict[str, Any]) -> None:
    with pytest.raises(ClaimsRefused):
        mapped({**K8S, "uid": 1000}, **mapping)


@pytest.mark.parametrize(
    ("mapping", "key", "words"),
    [
        ({"groups": "claims.groups +"}, "groups", "Syntax error"),
        ({"username": "claim.sub"}, "username", "undeclared reference to 'claim.sub'"),
        ({"username": "claims.sub.nosuch()"}, "username", "undeclared reference to 'nosuch'"),
        ({"username": "1 + 'a'"}, "username", "no matching overload"),
        (
            {"variables": (ClaimVariable("x", "vars."),)},
            r"variables\[0\]\.expression",
            "Syntax error",
        ),
        # zot demands a validation typed as a bool: a claim alone is dyn
        (
            {"validations": (ClaimValidation("claims.email_verified", "m"),)},
            r"validations\[0\]\.expression",
            "must give a bool, not dyn",
        ),
    ],
)
def test_what_zot_refuses_at_load_is_a_config_error_naming_the_key(
    mapping: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=rf"oidc\[0\]\.claimMapping\.{key}: .*{words}"):
        ClaimMapper(ClaimMapping(**mapping), "oidc[0]")


def test_zot_extensions_and_json_numbers() -> None:
    """The functions of the extensions zot loads (strings, sets, encoders, optional
    values); JSON numbers are doubles, compared with ints as cel-go compares them."""
    claims = {**K8S, "uid": 1000, "flag": True}
    ok = (
        ClaimValidation("sets.contains(claims.groups, ['ci'])", "sets"),
        ClaimValidation("claims.uid == 1000 && claims.uid > 999", "numbers"),
        ClaimValidation("claims.flag == true", "a boolean claim compared"),
        ClaimValidation("base64.encode(b'ci') == 'Y2k='", "encoders"),
    )
    username = "claims.?team.orValue('none') + '-' + '%s'.format([claims.owner.upperAscii()])"
    variables = (ClaimVariable("parts", "claims.sub.split(':')"),)
    assert mapped(claims, validations=ok, username=username)[0] == "none-MY-ORG"
    got = mapped(claims, variables=variables, username="vars.parts[3]", groups="vars.parts")
    assert got == ("source-controller", ("system", "serviceaccount", "flux-system", got[0]))


def test_variables_keep_their_cel_types() -> None:
    """A variable's value is handed to the next expressions as CEL made it: a timestamp
    and a duration in a list stay a timestamp and a duration."""
    variables = (
        ClaimVariable("t", "[timestamp('2020-01-01T00:00:00Z'), duration('1h')]"),
        ClaimVariable("ns", "claims['kubernetes.io/serviceaccount/namespace']"),
    )
    later = "vars.t[0] + vars.t[1] == timestamp('2020-01-01T01:00:00Z')"
    ok = (ClaimValidation(later, "time"),)
    assert mapped(variables=variables, validations=ok, username="vars.ns")[0] == "flux-system"


def test_claims_cel_cannot_take_are_refused_not_an_error() -> None:
    """A whole number past a double's range, or claims nested past Python's depth (both
    valid JSON a signed token may carry), refuse the token; they never raise anything else."""
    mapper = ClaimMapper(ClaimMapping(), "http.auth.bearer.oidc[0]")
    deep: list[Any] = []
    current = deep
    for _ in range(2000):
        current.append([])
        current = current[0]
    for odd in (10**400, deep):
        with pytest.raises(ClaimsRefused, match="claims CEL cannot take"):
            mapper.map({"iss": "https://issuer", "sub": "ci", "odd": odd})
