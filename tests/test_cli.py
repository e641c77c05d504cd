"""The command line on the tiny corpus: train, evaluate, predict, and its errors."""

from __future__ import annotations

import json

from app.artifact import current_version, load_model
from app.cli import main


def test_train_evaluate_predict_on_a_tiny_corpus(tiny_data_dir, tmp_path, capsys):
    store = tmp_path / "model"
    assert main(["train", "--data", str(tiny_data_dir), "--out", str(store)]) == 0
    out = capsys.readouterr().out
    assert "grouped cross-validation" in out and "independent test file" in out
    version = current_version(store)
    assert version and load_model(store).version == version

    report = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(store), "--data", str(tiny_data_dir / "test.csv"), "--report", str(report)]) == 0
    metrics = json.loads(report.read_text())["independent_test"]
    assert metrics["n"] == 9
    assert set(metrics["per_class"]) == {"genuine", "sales_pitch", "spam"}
    assert 0 <= metrics["macro_f1"] <= 1 and "genuine_as_spam_rate" in metrics and metrics["reliability"]
    capsys.readouterr()

    assert main(["predict", "Pay the fee and message me on Telegram", "--model", str(store), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] in {"genuine", "sales_pitch", "spam"}
    assert abs(sum(verdict["scores"].values()) - 1) < 1e-9


def test_a_missing_model_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["predict", "hello", "--model", str(tmp_path)]) == 2
    assert "no model in" in capsys.readouterr().err


def test_a_bad_label_names_the_line(tiny_data_dir, tmp_path, capsys):
    csv = tiny_data_dir / "corpus.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace(",genuine,", ",friendly,", 1)
    csv.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(tiny_data_dir), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "line 4" in err and "friendly" in err
