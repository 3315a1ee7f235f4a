"""The only module that knows where things live: zot's layout, one OCI image layout per repo.

<root>/
  <repo>/                    (a name may have several components: team/app)
    oci-layout               {"imageLayoutVersion": "1.0.0"}
    index.json               every stored manifest; tags in ref.name annotations
    blobs/<alg>/<hex>        blobs and manifests, named by digest
    .uploads/<session id>    upload sessions in progress
  .ocireg/                   ours: locks and temporary files, never a repository
"""

from __future__ import annotations

from ocireg.digest import Digest

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
UPLOADS_DIR = ".uploads"
BLOBS_DIR = "blobs"
PRIVATE_DIR = ".ocireg"
# What a repository's directory holds of its own (the rest are repositories below it)
REPOSITORY_ENTRIES = frozenset({OCI_LAYOUT_FILE, INDEX_FILE, BLOBS_DIR, UPLOADS_DIR})


def oci_layout(repo: str) -> str:
    return f"{repo}/{OCI_LAYOUT_FILE}"


def index(repo: str) -> str:
    return f"{repo}/{INDEX_FILE}"


def blob(repo: str, digest: Digest) -> str:
    return f"{repo}/{BLOBS_DIR}/{digest.algorithm}/{digest.hex}"


def blobs_dir(repo: str) -> str:
    return f"{repo}/{BLOBS_DIR}"


def uploads_dir(repo: str) -> str:
    return f"{repo}/{UPLOADS_DIR}"


def upload(repo: str, session: str) -> str:
    return f"{repo}/{UPLOADS_DIR}/{session}"
