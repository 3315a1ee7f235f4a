"""A repository's summary from its tag records (registry/search.py): distinct sizes, the
latest push and the newest tag."""

from __future__ import annotations

from ocireg.registry.search import search_text, summarise


def test_summary_counts_a_shared_blob_once_and_names_the_newest_tag() -> None:
    records = {
        "a": {"digest": "m1", "pushed": 10.0, "blobs": {"m1": 100, "layer": 1000}},
        "b": {"digest": "m2", "pushed": 30.0, "blobs": {"m2": 120, "layer": 1000}},
        "c": {"digest": "m1", "pushed": 20.0, "blobs": {"m1": 100, "layer": 1000}},
    }
    summary = summarise("r", records)
    assert (summary.name, summary.tags, summary.last_push, summary.size) == ("r", 3, 30.0, 1220)
    assert summary.newest is not None
    assert (summary.newest.tag, summary.newest.digest, summary.newest.size) == ("b", "m2", 1120)
    empty = summarise("e", {})
    assert (empty.tags, empty.last_push, empty.size, empty.newest) == (0, None, 0, None)


def test_search_text_is_the_tag_artifact_type_and_annotations_in_lower_case() -> None:
    record = {"artifactType": "application/X", "title": "Big App", "vendor": "ACME"}
    assert search_text("V1", record) == "v1\napplication/x\nbig app\n\nacme\n"
