"""The same requests, sent to zot and to ocireg: what each answers, reduced to what a client
sees (status, error code, the headers the spec names). tests/interop/test_differences.py
compares the two; docs/api.md explains each difference."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    absent_digest,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    sha256_digest,
    start_upload,
)

# Headers a client acts on; others (Date, Server, request ids, CORS) are left out.
HEADERS = (
    "content-type",
    "docker-content-digest",
    "location",
    "range",
    "link",
    "oci-subject",
    "oci-filters-applied",
    "content-range",
    "docker-upload-uuid",
    "oci-chunk-min-length",
    "www-authenticate",
)


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None  # the first error code, when the body is the error envelope
    headers: tuple[tuple[str, str], ...]
    body: str  # a short summary of the body where its shape matters

    def show(self) -> str:
        head = ", ".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.status} {self.code or ''} [{head}] {self.body}".strip()


def answer(r: httpx.Response, repo: str = "", body: str = "", digest: str = "") -> Answer:
    """`r` reduced; the probe's own repository and random digest are written as <repo> and
    <digest>, and upload session ids as <id>, so the two registries' answers compare."""
    code = None
    if r.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = r.json()
            if isinstance(doc, dict) and doc.get("errors"):
                code = str(doc["errors"][0].get("code"))
        except ValueError:
            code = "(invalid json)"
    headers = []
    for name in HEADERS:
        if name not in r.headers:
            continue
        value = r.headers[name]
        if name == "docker-upload-uuid":
            value = "<id>"
        value = re.sub(r"/uploads/[^?/]+", "/uploads/<id>", value)
        for real, shown in ((repo, "<repo>"), (digest, "<digest>")):
            if real:
                value = value.replace(real, shown)
        headers.append((name, value))
    return Answer(r.status_code, code, tuple(headers), body)


@dataclass
class Setup:
    repo: str
    other: str
    manifest: bytes  # the image under v1, v2, v3
    tag_digest: str
    layer_digest: str
    layer: bytes
    other_only: str  # a blob in `other` and nowhere else


def _push_fixed_image(client: httpx.Client, repo: str, tag: str, layer: bytes) -> bytes:
    """The same bytes on both registries, so digests compare (push_image's are random)."""
    config = b'{"architecture":"amd64","os":"linux"}'
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    body, _ = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    r = push_manifest(client, repo, tag, body)
    assert r.status_code == 201, r.text
    return body


def prepare(client: httpx.Client, repo: str, other: str) -> Setup:
    """repo: one image under v1, v2, v3 and an artifact on it; other: another image."""
    layer = b"probe layer\n" * 40
    manifest = _push_fixed_image(client, repo, "v1", layer)
    for tag in ("v2", "v3"):
        r = push_manifest(client, repo, tag, manifest)
        assert r.status_code == 201, r.text
    signature = b"signature"
    push_blob(client, repo, b"{}")
    push_blob(client, repo, signature)
    body, digest = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor("application/vnd.example.sig", signature)],
        subject=descriptor(OCI_MANIFEST, manifest),
        artifact_type="application/vnd.example.sig",
    )
    r = push_manifest(client, repo, digest, body)
    assert r.status_code == 201, r.text
    other_layer = b"only in the other repository\n" * 10
    _push_fixed_image(client, other, "v1", other_layer)
    return Setup(
        repo,
        other,
        manifest,
        sha256_digest(manifest),
        sha256_digest(layer),
        layer,
        sha256_digest(other_layer),
    )


Probe = Callable[[httpx.Client, Setup], Answer]
PROBES: dict[str, Probe] = {}


def probe(fn: Probe) -> Probe:
    PROBES[fn.__name__] = fn
    return fn


@probe
def base(c: httpx.Client, s: Setup) -> Answer:
    r = c.get("/v2/")
    return answer(r, body=r.text.strip())


@probe
def manifest_get_by_tag(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), s.repo)


@probe
def manifest_head_by_digest(c: httpx.Client, s: Setup) -> Answer:
    r = c.head(f"/v2/{s.repo}/manifests/{s.tag_digest}", headers={"Accept": OCI_MANIFEST})
    return answer(r, s.repo, body=f"length {r.headers.get('content-length')}")


@probe
def manifest_get_oci_with_docker_accept_only(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST}), s.repo)


@probe
def manifest_unknown_tag(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/nope"), s.repo)


@probe
def manifest_unknown_digest(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/{absent_digest()}"), s.repo)


@probe
def manifest_in_unknown_repo(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get("/v2/no/such/repo/manifests/v1"))


@probe
def manifest_head_unknown(c: httpx.Client, s: Setup) -> Answer:
    r = c.head(f"/v2/{s.repo}/manifests/nope")
    return answer(r, s.repo, body=f"body {len(r.content)} bytes")


@probe
def manifest_bad_reference(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/-bad-tag"), s.repo)


@probe
def manifest_malformed_digest(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/manifests/sha256:xyz"), s.repo)


@probe
def name_uppercase(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get("/v2/Upper/Case/manifests/v1"))


@probe
def put_manifest_blob_unknown(c: httpx.Client, s: Setup) -> Answer:
    body, _ = image_manifest({**descriptor(OCI_CONFIG, b"{}"), "digest": absent_digest()}, [])
    r = push_manifest(c, s.repo, "missing", body)
    return answer(r, s.repo)


@probe
def put_manifest_invalid_json(c: httpx.Client, s: Setup) -> Answer:
    r = push_manifest(c, s.repo, "broken", b"{not json")
    return answer(r, s.repo)


@probe
def put_manifest_media_type_mismatch(c: httpx.Client, s: Setup) -> Answer:
    r = push_manifest(c, s.repo, "mismatch", s.manifest, OCI_INDEX)
    return answer(r, s.repo)


@probe
def put_manifest_digest_mismatch(c: httpx.Client, s: Setup) -> Answer:
    r = push_manifest(c, s.repo, absent_digest(), s.manifest)
    return answer(r, s.repo)


@probe
def put_manifest_no_schema_version(c: httpx.Client, s: Setup) -> Answer:
    doc = json.loads(s.manifest)
    del doc["schemaVersion"]
    r = push_manifest(c, s.repo, "noschema", encode_json(doc))
    return answer(r, s.repo)


@probe
def put_manifest_with_subject(c: httpx.Client, s: Setup) -> Answer:
    config, layer = b"{}", b"payload"
    push_blob(c, s.repo, config)
    push_blob(c, s.repo, layer)
    subject = descriptor(OCI_MANIFEST, s.manifest)
    body, digest = image_manifest(
        descriptor(OCI_EMPTY, config),
        [descriptor("application/octet-stream", layer)],
        subject=subject,
        artifact_type="application/vnd.example.other",
    )
    r = push_manifest(c, s.repo, digest, body)
    return answer(r, s.repo)


@probe
def put_manifest_too_large(c: httpx.Client, s: Setup) -> Answer:
    body = b'{"schemaVersion":2,"x":"' + b"a" * (4 * 1024 * 1024 + 10) + b'"}'
    r = push_manifest(c, s.repo, "huge", body)
    return answer(r, s.repo)


@probe
def delete_manifest_by_tag(c: httpx.Client, s: Setup) -> Answer:
    r = c.delete(f"/v2/{s.repo}/manifests/v3")
    after = c.get(f"/v2/{s.repo}/manifests/{s.tag_digest}", headers={"Accept": OCI_MANIFEST})
    return answer(r, s.repo, body=f"manifest after: {after.status_code}")


@probe
def delete_blob_an_image_names(c: httpx.Client, s: Setup) -> Answer:
    r = c.delete(f"/v2/{s.repo}/blobs/{s.layer_digest}")
    after = c.head(f"/v2/{s.repo}/blobs/{s.layer_digest}")
    return answer(r, s.repo, body=f"blob after: {after.status_code}")


@probe
def delete_manifest_an_index_names(c: httpx.Client, s: Setup) -> Answer:
    repo = f"{s.repo}-multi"
    child = _push_fixed_image(c, repo, "amd64", s.layer)
    body, _ = image_index([descriptor(OCI_MANIFEST, child)])
    assert push_manifest(c, repo, "multi", body, OCI_INDEX).status_code == 201
    r = c.delete(f"/v2/{repo}/manifests/{sha256_digest(child)}")
    after = c.head(f"/v2/{repo}/manifests/{sha256_digest(child)}")
    return answer(r, repo, body=f"manifest after: {after.status_code}")


@probe
def cors_preflight(c: httpx.Client, s: Setup) -> Answer:
    # A browser's: any 2xx lets it go on (zot answers 204, Starlette 200), so the class.
    r = c.options(
        f"/v2/{s.repo}/tags/list",
        headers={
            "Origin": "http://ui.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    allowed = r.headers.get("access-control-allow-origin")
    return Answer(r.status_code // 100 * 100, None, (), f"allow-origin: {allowed}")


@probe
def cors_get(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/tags/list", headers={"Origin": "http://ui.example"})
    allowed = r.headers.get("access-control-allow-origin")
    return answer(r, s.repo, body=f"allow-origin: {allowed}")


@probe
def delete_manifest_unknown(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.delete(f"/v2/{s.repo}/manifests/{absent_digest()}"), s.repo)


@probe
def blob_get(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/blobs/{s.layer_digest}")
    return answer(r, s.repo, body=f"same bytes: {r.content == s.layer}")


@probe
def blob_head(c: httpx.Client, s: Setup) -> Answer:
    r = c.head(f"/v2/{s.repo}/blobs/{s.layer_digest}")
    return answer(r, s.repo, body=f"length {r.headers.get('content-length')}")


@probe
def blob_range(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/blobs/{s.layer_digest}", headers={"Range": "bytes=0-9"})
    return answer(r, s.repo, body=f"{len(r.content)} bytes")


@probe
def blob_range_unsatisfiable(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/blobs/{s.layer_digest}", headers={"Range": "bytes=100000-"})
    return answer(r, s.repo)


@probe
def blob_unknown(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/blobs/{absent_digest()}"), s.repo)


@probe
def blob_head_unknown(c: httpx.Client, s: Setup) -> Answer:
    r = c.head(f"/v2/{s.repo}/blobs/{absent_digest()}")
    return answer(r, s.repo, body=f"body {len(r.content)} bytes")


@probe
def blob_malformed_digest(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/blobs/sha256:xyz"), s.repo)


@probe
def blob_unknown_algorithm(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/blobs/md5:{'0' * 32}"), s.repo)


@probe
def blob_in_unknown_repo(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/no/such/repo/blobs/{s.layer_digest}"))


@probe
def blob_delete(c: httpx.Client, s: Setup) -> Answer:
    data, digest = random_blob(64)
    push_blob(c, s.repo, data)
    return answer(c.delete(f"/v2/{s.repo}/blobs/{digest}"), s.repo)


@probe
def blob_delete_unknown(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.delete(f"/v2/{s.repo}/blobs/{absent_digest()}"), s.repo)


@probe
def upload_start(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.post(f"/v2/{s.repo}/blobs/uploads/"), s.repo)


@probe
def upload_monolithic_post(c: httpx.Client, s: Setup) -> Answer:
    data, digest = random_blob(100)
    r = c.post(
        f"/v2/{s.repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    return answer(r, s.repo, digest=digest)


@probe
def upload_complete(c: httpx.Client, s: Setup) -> Answer:
    data, digest = random_blob(100)
    location = start_upload(c, s.repo)
    r = c.put(
        location,
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    return answer(r, s.repo, digest=digest)


@probe
def upload_patch(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    r = c.patch(location, content=b"12345", headers={"Content-Type": "application/octet-stream"})
    return answer(r, s.repo)


@probe
def upload_status(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    c.patch(location, content=b"12345", headers={"Content-Type": "application/octet-stream"})
    return answer(c.get(location), s.repo)


@probe
def upload_out_of_order_chunk(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    r = c.patch(
        location,
        content=b"12345",
        headers={"Content-Type": "application/octet-stream", "Content-Range": "10-14"},
    )
    return answer(r, s.repo)


@probe
def upload_wrong_digest(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    r = c.put(
        location,
        params={"digest": absent_digest()},
        content=b"abc",
        headers={"Content-Type": "application/octet-stream"},
    )
    return answer(r, s.repo)


@probe
def upload_put_without_digest(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    return answer(c.put(location, content=b"abc"), s.repo)


@probe
def upload_unknown_session(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/blobs/uploads/00000000-0000-0000-0000-000000000000"), s.repo)


@probe
def upload_cancel(c: httpx.Client, s: Setup) -> Answer:
    location = start_upload(c, s.repo)
    r = c.delete(location)
    return answer(r, s.repo, body=f"status after: {c.get(location).status_code}")


@probe
def mount_from_other(c: httpx.Client, s: Setup) -> Answer:
    r = c.post(f"/v2/{s.repo}/blobs/uploads/", params={"mount": s.other_only, "from": s.other})
    return answer(r, s.repo)


@probe
def mount_blob_source_lacks(c: httpx.Client, s: Setup) -> Answer:
    """The blob is in a third repository: neither in the target nor in `from`."""
    r = c.post(f"/v2/{s.other}/blobs/uploads/", params={"mount": s.layer_digest, "from": s.other})
    return answer(r, s.other)


@probe
def mount_unknown_blob(c: httpx.Client, s: Setup) -> Answer:
    r = c.post(f"/v2/{s.repo}/blobs/uploads/", params={"mount": absent_digest(), "from": s.other})
    return answer(r, s.repo)


@probe
def mount_without_from(c: httpx.Client, s: Setup) -> Answer:
    r = c.post(f"/v2/{s.other}/blobs/uploads/", params={"mount": s.layer_digest})
    return answer(r, s.other)


@probe
def tags_list(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/tags/list")
    return answer(r, s.repo, body=json.dumps(r.json()).replace(s.repo, "<repo>"))


@probe
def tags_list_page(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/tags/list", params={"n": 1})
    return answer(r, s.repo, body=json.dumps(r.json()).replace(s.repo, "<repo>"))


@probe
def tags_list_last(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/tags/list", params={"n": 1, "last": "v1"})
    return answer(r, s.repo, body=json.dumps(r.json()).replace(s.repo, "<repo>"))


@probe
def tags_list_n_zero(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/tags/list", params={"n": 0})
    return answer(r, s.repo, body=r.text.replace(s.repo, "<repo>").strip())


@probe
def tags_list_n_invalid(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/tags/list", params={"n": "abc"}), s.repo)


@probe
def tags_list_n_negative(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/tags/list", params={"n": "-1"}), s.repo)


@probe
def tags_list_unknown_repo(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get("/v2/no/such/repo/tags/list"))


@probe
def catalog_page(c: httpx.Client, s: Setup) -> Answer:
    r = c.get("/v2/_catalog", params={"n": 1})
    return answer(r, body=f"{len(r.json().get('repositories') or [])} names")


@probe
def catalog_n_invalid(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get("/v2/_catalog", params={"n": "abc"}))


@probe
def referrers(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/referrers/{s.tag_digest}")
    doc = r.json()
    return answer(r, s.repo, body=f"{doc.get('mediaType')} {len(doc.get('manifests', []))}")


@probe
def referrers_filtered(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(
        f"/v2/{s.repo}/referrers/{s.tag_digest}",
        params={"artifactType": "application/vnd.example.none"},
    )
    return answer(r, s.repo, body=f"{len(r.json().get('manifests', []))}")


@probe
def referrers_unknown_subject(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/referrers/{absent_digest()}")
    return answer(
        r,
        s.repo,
        body=r.text[:80] if r.status_code != 200 else str(len(r.json().get("manifests", []))),
    )


@probe
def referrers_malformed_digest(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/referrers/sha256:xyz"), s.repo)


@probe
def referrers_unknown_repo(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/no/such/repo/referrers/{s.tag_digest}"))


@probe
def base_head(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.head("/v2/"))


@probe
def catalog_last(c: httpx.Client, s: Setup) -> Answer:
    r = c.get("/v2/_catalog", params={"last": s.other})
    return answer(r, body=json.dumps(r.json()))


@probe
def docker_manifest_list(c: httpx.Client, s: Setup) -> Answer:
    """A Docker manifest list over the image, pushed by tag and read with several Accepts."""
    body, _ = image_index(
        [descriptor(OCI_MANIFEST, s.manifest, platform={"architecture": "amd64", "os": "linux"})],
        media_type=DOCKER_LIST,
    )
    put = push_manifest(c, s.repo, "list", body, DOCKER_LIST)
    r = c.get(f"/v2/{s.repo}/manifests/list", headers={"Accept": f"{OCI_INDEX}, {DOCKER_LIST}"})
    return answer(r, s.repo, body=f"put {put.status_code}, same bytes {r.content == body}")


@probe
def manifest_head_accept_other_type(c: httpx.Client, s: Setup) -> Answer:
    """An OCI manifest asked for with only the index type acceptable."""
    r = c.head(f"/v2/{s.repo}/manifests/v1", headers={"Accept": OCI_INDEX})
    return answer(r, s.repo)


@probe
def blob_range_suffix(c: httpx.Client, s: Setup) -> Answer:
    r = c.get(f"/v2/{s.repo}/blobs/{s.layer_digest}", headers={"Range": "bytes=-10"})
    return answer(r, s.repo, body=f"{len(r.content)} bytes")


@probe
def upload_patch_after_complete(c: httpx.Client, s: Setup) -> Answer:
    data, digest = random_blob(10)
    location = start_upload(c, s.repo)
    c.put(location, params={"digest": digest}, content=data)
    return answer(c.patch(location, content=b"more"), s.repo)


@probe
def tag_overwrite_moves_tag(c: httpx.Client, s: Setup) -> Answer:
    """v2 moved to the artifact-free other image: the tag list keeps one v2."""
    body = _push_fixed_image(c, s.repo, "v2", b"second image layer\n" * 8)
    r = c.get(f"/v2/{s.repo}/manifests/v2", headers={"Accept": OCI_MANIFEST})
    tags = c.get(f"/v2/{s.repo}/tags/list").json()["tags"]
    return answer(r, s.repo, body=f"moved {r.content == body}, v2 listed {tags.count('v2')}x")


@probe
def unknown_endpoint(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.get(f"/v2/{s.repo}/nothing-here"), s.repo)


@probe
def method_not_allowed(c: httpx.Client, s: Setup) -> Answer:
    return answer(c.post(f"/v2/{s.repo}/manifests/v1"), s.repo)


def run_all(client: httpx.Client, setup: Setup) -> dict[str, Answer]:
    out: dict[str, Answer] = {}
    for name, fn in PROBES.items():
        try:
            out[name] = fn(client, setup)
        except Exception as exc:  # a probe that breaks is an answer too
            out[name] = Answer(-1, type(exc).__name__, (), str(exc)[:200])
    return out
