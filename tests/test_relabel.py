"""Blind relabelling: the sample a second hand sees hides the answer; agreement is Cohen's kappa."""

from __future__ import annotations

import json

import pytest

from app.relabel import agreement, labelled_items, make_tasks, read_answers
from app.simulated import load_source
from tests.conftest import SIMULATED


@pytest.fixture(scope="module")
def sources():
    return [load_source(p) for p in sorted(SIMULATED.glob("x*.json"))]


def test_a_task_shows_what_the_inbox_shows_and_never_the_label_or_role(sources):
    tasks = make_tasks(sources, 1.0, ["r1", "r2"])
    rows = tasks["r1"] + tasks["r2"]
    assert len(rows) == sum(len(labelled_items(s)) for s in sources)
    for row in rows:
        text = json.dumps(row)
        assert '"label"' not in text and '"role"' not in text
        assert {"id", "kind", "sender", "earlier", "text", "owner"} <= set(row)
    bump = next(r for r in rows if r["text"].startswith("Bumping this"))
    assert [e["from"] for e in bump["earlier"]] == ["sender"]  # the pitch it follows, not the owner's persona


def test_the_sample_takes_a_share_of_every_inbox_and_is_deterministic(sources):
    first = make_tasks(sources, 0.3, ["r1"], seed=3)["r1"]
    assert first == make_tasks(sources, 0.3, ["r1"], seed=3)["r1"]
    assert {r["id"].split(":")[0] for r in first} == {s.inbox for s in sources}


def test_agreement_is_cohens_kappa_and_lists_every_disagreement(tmp_path):
    authored = {"a": "genuine", "b": "spam", "c": "sales_pitch", "d": "genuine"}
    path = tmp_path / "r1.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": k, "label": v}) + "\n"
            for k, v in [("a", "genuine"), ("b", "spam"), ("c", "genuine"), ("d", "genuine")]
        )
    )
    report = agreement(authored, read_answers([path]))
    assert report["n"] == 4 and report["observed_agreement"] == 0.75
    assert report["disagreements"] == [{"id": "c", "author": "sales_pitch", "second": "genuine"}]
    assert 0 < report["cohen_kappa"] < 0.75  # kappa discounts the agreement expected by chance
    path.write_text('{"id": "a", "label": "maybe"}\n')
    with pytest.raises(ValueError, match=r"r1\.jsonl:1"):
        read_answers([path])
