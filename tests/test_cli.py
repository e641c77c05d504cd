"""The command line on tiny inboxes: corpus build and stats, train, evaluate, predict, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

from app import report
from app.artifact import current_version, load_model, save_model
from app.cli import main
from app.model import Thresholds


def test_train_evaluate_predict_on_tiny_inboxes(tiny_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIAGE_REPORTS_DIR", str(tmp_path / "reports"))
    store = tmp_path / "model"
    assert main(["train", "--data", str(tiny_data_dir), "--out", str(store), "--folds", "2"]) == 0
    out = capsys.readouterr().out
    for name in ("grouped_cv_export", "grouped_cv_text", "test_inboxes_export", "test_inboxes_text"):
        assert f"{name}: n=" in out
    version = current_version(store)
    assert version and load_model(store).version == version
    training = json.loads((tmp_path / "reports" / "training.json").read_text())
    assert training["model_version"] == version and training["grouped_cv_export"]["per_class"]

    report = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(store), "--data", str(tiny_data_dir), "--report", str(report)]) == 0
    metrics = json.loads(report.read_text())
    export, text = metrics["test_inboxes_export"], metrics["test_inboxes_text"]
    assert export["n"] == text["n"] == 8  # the tx1 inbox: every labelled item, in both modes
    assert export["mode"].startswith("export") and set(export["per_class"]) == {"genuine", "sales_pitch", "spam"}
    assert 0 <= export["macro_f1"] <= 1 and "genuine_as_spam_rate" in export and metrics["grouped_cv_export"]["n"] == 25
    (hand,) = metrics["test_hands"]  # one test hand: its own figures are the whole test's
    assert metrics["test_hands"][hand]["export"]["macro_f1"] == export["macro_f1"]
    assert metrics["test_hands"][hand]["text"]["macro_f1"] == text["macro_f1"] and metrics["test_hands"][hand]["inboxes"] == 1
    capsys.readouterr()

    assert main(["predict", "Pay the fee and message me on Telegram", "--model", str(store), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] in {"genuine", "sales_pitch", "spam"}
    assert abs(sum(verdict["scores"].values()) - 1) < 1e-9


def test_corpus_build_and_stats(tiny_data_dir, capsys):
    assert main(["corpus", "build", "--data", str(tiny_data_dir)]) == 0
    assert "rendered 2 training inboxes" in capsys.readouterr().out
    assert main(["corpus", "stats", "--data", str(tiny_data_dir)]) == 0
    out = capsys.readouterr().out
    assert "## train: 2 inboxes" in out and "| length deciles (characters) |" in out


def test_a_missing_model_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["predict", "hello", "--model", str(tmp_path)]) == 2
    assert "no model in" in capsys.readouterr().err


def test_a_bad_setting_names_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIAGE_MAX_TEXT_CHARS", "lots")
    (tmp_path / "in.csv").write_text("text\nhello\n")
    assert main(["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]) == 2
    assert "TRIAGE_MAX_TEXT_CHARS" in capsys.readouterr().err


def test_a_broken_inbox_source_names_the_file_and_the_place(tiny_data_dir, capsys):
    path = tiny_data_dir / "inboxes" / "src" / "x01" / "x01-1.json"
    path.write_text(path.read_text().replace('"label": "spam"', '"label": "friendly"', 1))
    assert main(["corpus", "build", "--data", str(tiny_data_dir)]) == 2
    err = capsys.readouterr().err
    assert "x01-1.json" in err and "friendly" in err and "conversations[" in err


def test_the_report_rolls_conversations_up_with_the_models_thresholds(tiny_model, tmp_path, capsys, monkeypatch):
    export = Path(__file__).parent / "fixtures" / "linkedin" / "export"
    store = tmp_path / "model"
    save_model(tiny_model, store, dict(tiny_model.manifest, thresholds={"review": 0.9, "spam": 0.8}))
    scored = tmp_path / "scored.csv"
    assert main(["score", str(export), "-o", str(scored), "--model", str(store), "--jobs", "1"]) == 0
    used: list[Thresholds | None] = []
    build = report.build_report
    monkeypatch.setattr(
        report, "build_report", lambda rows, title, thresholds=None: used.append(thresholds) or build(rows, title)
    )
    assert main(["report", str(scored), "-o", str(tmp_path / "r.html"), "--model", str(store)]) == 0
    assert main(["report", str(scored), "-o", str(tmp_path / "r2.html"), "--model", str(tmp_path / "none")]) == 0
    assert used == [Thresholds(review=0.9, spam=0.8), None]
    assert "the report uses the defaults" in capsys.readouterr().err
    assert (tmp_path / "r2.html").read_text().startswith("<!")


def test_compare_scores_each_candidate_in_both_modes(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "model_selection.json"
    assert (
        main(
            ["compare", "--data", str(tiny_data_dir), "--report", str(out), "--only", "shipped", "--only", "C=3", "--folds", "2"]
        )
        == 0
    )
    candidates = json.loads(out.read_text())["candidates"]
    assert list(candidates) == ["shipped", "C=3"]
    for row in candidates.values():
        for mode in ("export", "text"):
            assert 0 <= row[mode]["macro_f1"] <= 1 and 0 <= row[mode]["genuine_as_spam_rate"] <= 1
    assert "C=3" in capsys.readouterr().out
