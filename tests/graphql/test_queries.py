"""zot's GraphQL search (`/v2/_zot/ext/search`) answering the exact texts zui and zli send,
with zot's shapes and values, against a real server with `extensions.search` enabled."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.graphql import queries as q
from tests.graphql.conftest import (
    ANNOTATIONS,
    NOTATION,
    SBOM,
    SEARCH,
    V1_CREATED,
    V2_CREATED,
    Content,
    config_digest,
    gql,
    gql_zli,
    image_size,
    layer_summaries,
    push_content,
)
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, Image, descriptor

NO_VULNERABILITIES = {"MaxSeverity": "", "Count": 0}
ZERO_TIME = "0001-01-01T00:00:00Z"
V1_TIME = V1_CREATED  # nanoseconds kept, as Go writes them


@pytest.fixture(scope="module")
def content(client: httpx.Client) -> Content:
    return push_content(client, "gql")


def test_zli_finds_the_endpoint_and_its_queries(client: httpx.Client) -> None:
    """zli's preflight: the extension list names the endpoint, and introspection lists the
    queries with their arguments."""
    r = client.get("/v2/_oci/ext/discover")
    assert r.status_code == 200, r.text
    assert r.json()["extensions"][0]["name"] == "_zot"
    assert r.json()["extensions"][0]["endpoints"] == [SEARCH, "/v2/_zot/ext/mgmt"]
    schema = gql_zli(client, q.ZLI_SCHEMA)["data"]["__schema"]
    fields = {f["name"]: f for f in schema["queryType"]["fields"]}
    types = {t["name"] for t in schema["types"]}
    for name, (args, returned) in q.ZLI_REQUIRED.items():
        assert [a["name"] for a in fields[name]["args"]] == args, name
        assert returned in types
    assert fields["Referrers"]["type"]["kind"] == "NON_NULL"


def test_global_search_finds_repositories(client: httpx.Client, content: Content) -> None:
    data = gql(client, q.zui_global_search("gql/ap"))["data"]["GlobalSearch"]
    assert data["Page"] == {"TotalCount": 1, "ItemCount": 1}
    (repo,) = data["Repos"]
    assert repo["Name"] == content.app
    # zot v2.1.20: the newest tag's creation (its push), later than the newest image's time
    newest = f'{{Image(image: "{content.app}:artifact") {{TaggedTimestamp}}}}'
    assert repo["LastUpdated"] == gql(client, newest)["data"]["Image"]["TaggedTimestamp"]
    assert repo["LastUpdated"] > V2_CREATED
    assert repo["Platforms"] == [{"Os": "linux", "Arch": "amd64"}]
    assert (repo["IsStarred"], repo["IsBookmarked"], repo["StarCount"]) == (False, False, 0)
    assert repo["DownloadCount"] == 0
    newest = repo["NewestImage"]
    assert newest["Tag"] == "v2"
    assert newest["Vulnerabilities"] == NO_VULNERABILITIES
    assert (newest["Vendor"], newest["IsSigned"], newest["SignatureInfo"]) == (
        "Example Vendor",
        False,
        [],
    )
    # every blob once: both images (their config, layers, manifests) and the artifact's
    blobs = {
        **_blobs(content.v1),
        **_blobs(content.v2),
        **_blobs(content.artifact),
    }
    assert repo["Size"] == str(sum(blobs.values()))

    both = gql_zli(client, q.zli_global_search("gql"))["data"]["GlobalSearch"]
    assert [r["Name"] for r in both["Repos"]] == [content.app, content.multi]  # ALPHABETIC_ASC
    assert both["Images"] == []
    multi = both["Repos"][1]
    assert multi["Platforms"] == [
        {"Os": "linux", "Arch": "amd64"},
        {"Os": "linux", "Arch": "arm64/v8"},
    ]
    assert set(multi) == {"Name", "Platforms", "LastUpdated", "Size", "DownloadCount", "StarCount"}


def test_global_search_with_no_text_pages_every_repository(
    client: httpx.Client, content: Content
) -> None:
    """zui's explore page: `query:""`, every repository, a page at a time."""
    second = gql(client, q.zui_global_search("", page_number=2, page_size=1))
    found = second["data"]["GlobalSearch"]
    assert found["Page"] == {"TotalCount": 2, "ItemCount": 1}
    assert [r["Name"] for r in found["Repos"]] == [content.multi]  # equal ranks: by name
    assert found["Repos"][0]["NewestImage"]["Tag"] == "latest"


def test_global_search_filters(client: httpx.Client, content: Content) -> None:
    def names(**flt: Any) -> list[str]:
        found = gql(client, q.zui_global_search("gql", **flt))["data"]["GlobalSearch"]
        assert found["Page"]["TotalCount"] == len(found["Repos"])
        return [r["Name"] for r in found["Repos"]]

    assert names(arch=["arm64/v8"]) == [content.multi]
    assert names(os=["linux"], arch=["amd64"]) == [content.app, content.multi]
    assert names(os=["windows"]) == []
    assert names(starred=True) == []  # no stars kept
    assert names(signed=True) == [content.multi]  # app's newest, v2, is not signed (v1 is)


def test_global_search_finds_tags(client: httpx.Client, content: Content) -> None:
    images = gql(client, q.zui_image_suggestions(f"{content.app}:v"))["data"]["GlobalSearch"]
    assert images["Images"] == [
        {"RepoName": content.app, "Tag": "v1"},
        {"RepoName": content.app, "Tag": "v2"},
    ]
    by_tag = gql_zli(client, q.zli_global_search(":lates"))["data"]["GlobalSearch"]["Images"]
    assert [(i["RepoName"], i["Tag"], i["MediaType"]) for i in by_tag] == [
        (content.multi, "latest", OCI_INDEX)
    ]


def test_repo_list_with_newest_image(client: httpx.Client, content: Content) -> None:
    data = gql(client, q.zui_repo_list(page_size=1))["data"]["RepoListWithNewestImage"]
    assert set(data) == {"Results"}
    (first,) = data["Results"]  # UPDATE_TIME: the index's newest manifest is V2_CREATED too
    assert first["Name"] in (content.app, content.multi)
    rest = gql(client, q.zui_repo_list(page_number=2, page_size=1))
    (second,) = rest["data"]["RepoListWithNewestImage"]["Results"]
    assert {first["Name"], second["Name"]} == {content.app, content.multi}
    app = first if first["Name"] == content.app else second
    assert app["NewestImage"]["Title"] == ""  # v2 has no annotations; v1 has the title
    assert app["NewestImage"]["Labels"] == ""
    assert app["NewestImage"]["Documentation"] == ""


def test_expanded_repo_info(client: httpx.Client, content: Content) -> None:
    data = gql(client, q.zui_expanded_repo_info(content.app))["data"]["ExpandedRepoInfo"]
    images = data["Images"]
    assert [i["Tag"] for i in images] == ["v2", "v1", "artifact"]  # newest first
    v1 = images[1]
    assert v1 == {
        "Manifests": [
            {
                "Digest": content.v1.digest,
                "Platform": {"Os": "linux", "Arch": "amd64"},
                "Size": str(image_size(content.v1)),
            }
        ],
        "Vulnerabilities": NO_VULNERABILITIES,
        "Tag": "v1",
        "LastUpdated": V1_TIME,
        "Vendor": "Example Vendor",
        "IsDeletable": True,
    }
    assert images[2]["LastUpdated"] == ZERO_TIME  # an artifact: no created time anywhere
    summary = data["Summary"]
    assert summary["Name"] == content.app
    assert summary["Vendors"] == ["Example Vendor"]
    assert summary["Platforms"] == [{"Os": "linux", "Arch": "amd64"}]
    assert summary["NewestImage"]["Tag"] == "v2"
    assert summary["NewestImage"]["Manifests"] == [{"Digest": content.v2.digest}]


def test_image_list_with_an_index(client: httpx.Client, content: Content) -> None:
    data = gql_zli(client, q.zli_image_list(content.multi))["data"]["ImageList"]
    (index,) = data["Results"]
    assert index["Tag"] == "latest"
    assert index["Digest"] == content.index_digest
    assert index["MediaType"] == OCI_INDEX
    assert index["Size"] == str(image_size(content.amd64) + image_size(content.arm64))
    assert index["LastUpdated"] == V2_CREATED
    assert index["IsSigned"] is True  # cosign's tag; not itself an image of the list
    assert index["Manifests"] == [
        {
            "Digest": image.digest,
            "ConfigDigest": config_digest(image),
            "Size": str(image_size(image)),
            "Platform": platform,
            "IsSigned": False,
            "Layers": layer_summaries(image),
            "LastUpdated": created,
        }
        for image, platform, created in (
            (content.amd64, {"Os": "linux", "Arch": "amd64"}, V1_TIME),
            (content.arm64, {"Os": "linux", "Arch": "arm64/v8"}, V2_CREATED),
        )
    ]
    image = gql(client, q.zui_image(content.multi, "latest"))["data"]["Image"]
    assert image["SignatureInfo"] == [{"Tool": "cosign", "IsTrusted": False, "Author": ""}]
    assert [m["Platform"] for m in image["Manifests"]] == [
        {"Os": "linux", "Arch": "amd64"},
        {"Os": "linux", "Arch": "arm64/v8"},
    ]
    assert image["Vendor"] == "Example Vendor"  # the index has none: its first image's
    digest = gql_zli(client, q.zli_image_list_for_digest(content.arm64.digest))
    found = digest["data"]["ImageListForDigest"]["Results"]
    assert [(i["RepoName"], i["Tag"]) for i in found] == [(content.multi, "latest")]


def test_image_with_referrers_history_and_signature(client: httpx.Client, content: Content) -> None:
    image = gql(client, q.zui_image(content.app, "v1"))["data"]["Image"]
    assert image["RepoName"] == content.app
    assert image["Tag"] == "v1"
    assert image["IsSigned"] is True
    assert image["SignatureInfo"] == [{"Tool": "notation", "IsTrusted": False, "Author": ""}]
    assert image["Vulnerabilities"] == NO_VULNERABILITIES
    assert image["TaggedTimestamp"] != ZERO_TIME  # when v1 was pushed (test_stamps.py)
    assert image["ArtifactType"] == "application/vnd.oci.image.config.v1+json"
    assert image["Vendor"] == "Example Vendor"
    assert image["Licenses"] == ANNOTATIONS["org.opencontainers.image.licenses"]
    referrers = sorted(image["Referrers"], key=lambda r: r["ArtifactType"])
    assert referrers == [
        {
            "MediaType": OCI_MANIFEST,
            "ArtifactType": NOTATION,
            "Size": len(content.signature.manifest),
            "Digest": content.signature.digest,
            "Annotations": [{"Key": "io.cncf.notary.x", "Value": "y"}],
        },
        {
            "MediaType": OCI_MANIFEST,
            "ArtifactType": SBOM,
            "Size": len(content.artifact.manifest),
            "Digest": content.artifact.digest,
            "Annotations": [{"Key": "org.example.kind", "Value": "sbom"}],
        },
    ]
    (manifest,) = image["Manifests"]
    assert sorted(manifest["Referrers"], key=lambda r: r["ArtifactType"]) == referrers
    assert manifest["Digest"] == content.v1.digest
    assert manifest["ConfigDigest"] == config_digest(content.v1)
    assert manifest["Layers"] == layer_summaries(content.v1)
    layers = layer_summaries(content.v1)
    assert manifest["History"] == [
        {
            "Layer": layers[0],
            "HistoryDescription": {"CreatedBy": "ADD rootfs /", "EmptyLayer": False},
        },
        {"Layer": None, "HistoryDescription": {"CreatedBy": "ENV A=1", "EmptyLayer": True}},
        {"Layer": layers[1], "HistoryDescription": {"CreatedBy": "RUN make", "EmptyLayer": False}},
    ]

    artifact = gql(client, q.zui_image(content.app, "artifact"))["data"]["Image"]
    assert artifact["ArtifactType"] == SBOM
    assert artifact["Manifests"][0]["ArtifactType"] == SBOM
    assert artifact["Manifests"][0]["Platform"] == {"Os": "", "Arch": ""}
    assert artifact["Manifests"][0]["ConfigDigest"] == config_digest(content.artifact)
    assert artifact["Referrers"] == []


def test_referrers(client: httpx.Client, content: Content) -> None:
    zli = gql_zli(client, q.zli_referrers(content.app, content.v1.digest))["data"]["Referrers"]
    assert sorted(r["Digest"] for r in zli) == sorted(
        [content.artifact.digest, content.signature.digest]
    )
    assert all(
        set(r) == {"ArtifactType", "Digest", "MediaType", "Size", "Annotations"} for r in zli
    )
    everything = gql(client, q.zui_referrers(content.app, content.v1.digest))
    assert len(everything["data"]["Referrers"]) == 2  # zui's type: "" filters nothing
    sboms = gql(client, q.zui_referrers(content.app, content.v1.digest, SBOM))
    assert [r["Digest"] for r in sboms["data"]["Referrers"]] == [content.artifact.digest]
    bad = gql(client, q.zui_referrers(content.app, "sha256:nothex"))
    assert bad["data"] is None
    assert bad["errors"][0]["message"] == "bad digest string from request 'sha256:nothex'"


def test_cve_queries_answer_a_graphql_error(client: httpx.Client, content: Content) -> None:
    for query in (
        q.zui_vulnerabilities(f"{content.app}:v1"),
        q.zli_cve_list_for_image(f"{content.app}:v1"),
    ):
        body = gql(client, query)
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["message"].startswith("cve search is disabled")
        assert error["path"] == ["CVEListForImage"]


def test_missing_image_and_bad_queries(client: httpx.Client, content: Content) -> None:
    missing = gql(client, q.zui_image(content.app, "nope"))
    assert missing["data"] is None
    assert missing["errors"][0]["message"] == f"can't find image: {content.app}:nope"
    signature = gql(client, q.zui_image(content.app, "notation-sig"))  # a signature, as in zot
    assert signature["errors"][0]["message"] == f"can't find image: {content.app}:notation-sig"
    unknown = gql(client, q.zui_expanded_repo_info("gql/absent"))
    assert unknown["errors"][0]["message"] == "repo metadata not found for given repo name"
    assert gql(client, "{ImageList(repo: ", status=422)["data"] is None
    invalid = gql(client, '{ImageList(repo: "x") {Results {NoSuchField}}}', status=422)
    assert "NoSuchField" in invalid["errors"][0]["message"]


def _aliases(count: int, field: str = "RepoListWithNewestImage {Results {Name}}") -> str:
    return "{" + " ".join(f"a{i}: {field}" for i in range(count)) + "}"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # each alias of a root field lists the registry again: 2,000 took a worker 4 s
        (_aliases(11), "11 root fields"),
        ("query { ...A } fragment A on Query " + _aliases(11), "11 root fields"),
        (_aliases(1, "RepoListWithNewestImage {Results {" + "Name " * 600 + "}}"), "602 fields"),
    ],
    ids=["aliases", "aliases-in-a-fragment", "fields"],
)
def test_queries_past_the_limits_are_422(
    client: httpx.Client, content: Content, query: str, message: str
) -> None:
    for r in (
        client.get(SEARCH, params={"query": query}),
        client.post(SEARCH, json={"query": query}),
    ):
        assert r.status_code == 422, r.text
        (error,) = r.json()["errors"]
        assert message in error["message"]
    within = gql(client, _aliases(10))["data"]
    assert len(within) == 10 and all(v["Results"] for v in within.values())


def test_a_query_body_past_64_kib_is_413(client: httpx.Client) -> None:
    # 1 MiB was allowed: seconds of parsing, and ~80 MiB of syntax tree kept per text
    r = client.post(SEARCH, json={"query": "{__typename}" + " " * (64 << 10)})
    assert r.status_code == 413, r.text
    assert r.json() == {
        "errors": [{"message": "request body larger than 65536 bytes"}],
        "data": None,
    }


def test_post_with_variables(client: httpx.Client, content: Content) -> None:
    query = (
        "query($r: String!) { ImageList(repo: $r) { Page {TotalCount ItemCount} Results {Tag} } }"
    )
    r = client.post(SEARCH, json={"query": query, "variables": {"r": content.app}})
    assert r.status_code == 200, r.text
    data = r.json()["data"]["ImageList"]
    assert data["Page"] == {"TotalCount": 3, "ItemCount": 3}
    assert [i["Tag"] for i in data["Results"]] == ["artifact", "v1", "v2"]  # RELEVANCE
    other = client.post(
        SEARCH, content=json.dumps({"query": query}), headers={"content-type": "text/plain"}
    )
    assert other.status_code == 400
    assert other.json() == {"errors": [{"message": "transport not supported"}], "data": None}


def _blobs(image: Image) -> dict[str, int]:
    parts = [image.manifest, image.config, *image.layers]
    return {descriptor("x", part)["digest"]: len(part) for part in parts}
