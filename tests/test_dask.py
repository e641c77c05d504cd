"""The Dask engine: the same rows as the local engine, on a LocalCluster, with the model checked on every worker."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed")

from app.artifact import save_model
from app.batch import score_file
from app.output import SCORE_COLUMNS, errors_path
from app.simulated import load_source, write_export
from tests.conftest import SIMULATED

EXPORT = Path(__file__).parent / "fixtures" / "linkedin" / "export"


@pytest.fixture(scope="module")
def inputs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    store = root / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    plain = root / "inbox.csv"
    with open(plain, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "sender_name", "campaign"])
        for i in range(300):
            writer.writerow(
                [
                    f"r{i}",
                    f"Message number {i}: {('we help teams grow, 15 minutes?', 'congrats!', 'hello dear, whatsapp me')[i % 3]}",
                    f"S{i % 7}",
                    "x",
                ]
            )
        writer.writerow(["bad", "", "", ""])
    second = root / "x02-1"
    write_export(load_source(SIMULATED / "x02-1.json"), second)
    return store, [plain, EXPORT, second]


def test_the_dask_engine_writes_the_local_engines_rows(inputs, tmp_path):
    store, paths = inputs
    local, dask = tmp_path / "local.csv", tmp_path / "dask.csv"
    r_local = score_file(paths, local, model_dir=store, jobs=1, chunk_size=50, progress=False)
    r_dask = score_file(paths, dask, model_dir=store, jobs=2, chunk_size=50, progress=False, engine="dask")
    assert local.read_text() == dask.read_text()
    assert errors_path(local).read_text() == errors_path(dask).read_text()
    for r in (r_local, r_dask):
        assert r.read == r.scored + r.n_skipped + r.failed and r.scored > 300
    assert (r_local.scored, r_local.failed, r_local.skipped) == (r_dask.scored, r_dask.failed, r_dask.skipped)
    assert r_dask.jobs == 2


def test_partitioned_parquet_output_holds_the_same_rows(inputs, tmp_path):
    store, paths = inputs
    local = tmp_path / "local.csv"
    score_file(paths[:1], local, model_dir=store, jobs=1, progress=False)
    out = tmp_path / "parts"
    score_file(paths[:1], f"{out}/", model_dir=store, jobs=2, progress=False, engine="dask")
    frame = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet"))], ignore_index=True)
    expected = pd.read_csv(local, keep_default_na=False)
    assert list(frame["id"]) == list(expected["id"])
    assert list(frame["verdict"]) == list(expected["verdict"])
    assert frame["p_spam"].round(4).tolist() == expected["p_spam"].tolist()
    assert set(SCORE_COLUMNS) <= set(frame.columns)


def test_workers_serving_another_model_are_refused(inputs, tmp_path, tiny_model, monkeypatch):
    store, paths = inputs
    monkeypatch.setattr("app.dask_engine._served_version", lambda: "some-other-version")
    with pytest.raises(ValueError, match="another model"):
        score_file(paths[:1], tmp_path / "o.csv", model_dir=store, jobs=1, progress=False, engine="dask")
