"""The `triage` command line: parses arguments, calls the core, prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def cmd_build_corpus(args: argparse.Namespace) -> int:
    from app.corpus import CORPUS_FILE, TEST_FILE, build_corpus

    data_dir = Path(args.data)
    train, test = build_corpus(data_dir)
    train.to_csv(data_dir / CORPUS_FILE, index=False)
    test.to_csv(data_dir / TEST_FILE, index=False)
    print(f"wrote {data_dir / CORPUS_FILE} ({len(train)} rows) and {data_dir / TEST_FILE} ({len(test)} rows)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from app.metrics import format_report
    from app.train import train_and_save

    settings = _settings()
    data_dir = Path(args.data) if args.data else settings.data_dir
    out_dir = Path(args.out) if args.out else settings.model_dir
    test_file = Path(args.test) if args.test else data_dir / "test.csv"
    start = time.perf_counter()
    result = train_and_save(data_dir, out_dir, test_file)
    elapsed = time.perf_counter() - start
    print(format_report("grouped cross-validation (out-of-fold)", result.cv_report))
    if "test_report" in result.extra:
        print(format_report(f"independent test file {test_file}", result.extra["test_report"]))
    m = result.manifest
    print(
        f"temperature {m['temperature']:.3f}; thresholds review {m['thresholds']['review']:.2f}, "
        f"spam {m['thresholds']['spam']:.2f}; {m['n_features']} features"
    )
    print(f"saved {m['version']} to {result.extra['path']} in {elapsed:.1f} s")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from app.artifact import load_model
    from app.corpus import read_corpus
    from app.metrics import format_report
    from app.train import evaluate_frame

    settings = _settings()
    model = load_model(Path(args.model) if args.model else settings.model_dir)
    data = Path(args.data) if args.data else settings.data_dir / "test.csv"
    report = evaluate_frame(model, read_corpus(data))
    print(format_report(f"{model.version} on {data}", report))
    out = Path(args.report) if args.report else settings.reports_dir / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_version": model.version,
        "data": str(data),
        "independent_test": report,
        "grouped_cv": model.manifest.get("metrics", {}).get("grouped_cv"),
        "thresholds": model.manifest.get("thresholds"),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from app.artifact import load_model
    from app.features import Item

    model = load_model(Path(args.model) if args.model else _settings().model_dir)
    item = Item(text=args.text, kind=args.kind)
    verdict = model.score_item(item)
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(verdict), indent=2, ensure_ascii=False))
        return 0
    print(verdict.summary)
    print("scores: " + ", ".join(f"{k} {v:.3f}" for k, v in verdict.scores.items()))
    for r in verdict.reasons:
        spans = ", ".join(repr(s.text) for s in r.spans[:3])
        print(f"  {r.contribution:+.3f}  {r.feature}  ({r.description}{'; ' + spans if spans else ''})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.compare import compare_models

    settings = _settings()
    data_dir = Path(args.data) if args.data else settings.data_dir
    out = Path(args.report) if args.report else settings.reports_dir / "model_selection.json"
    compare_models(data_dir, out, print_fn=print)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage", description="Triage LinkedIn invites and messages: genuine, sales_pitch or spam, with the evidence."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on the corpus and save a new version")
    p.add_argument("--data", help="data folder with corpus.csv (default: TRIAGE_DATA_DIR or data/)")
    p.add_argument("--out", help="model store to write into (default: TRIAGE_MODEL_DIR or model/)")
    p.add_argument("--test", help="independent test CSV to report on (default: DATA/test.csv)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on a labelled CSV; writes reports/metrics.json")
    p.add_argument("--model", help="model store or version folder (default: TRIAGE_MODEL_DIR)")
    p.add_argument("--data", help="labelled CSV (default: data/test.csv)")
    p.add_argument("--report", help="where to write the metrics JSON (default: reports/metrics.json)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="score one text and print the verdict with its reasons")
    p.add_argument("text")
    p.add_argument("--kind", choices=("message", "invite"), default="message")
    p.add_argument("--model")
    p.add_argument("--json", action="store_true", help="print the full verdict as JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="compare model alternatives in grouped cross-validation")
    p.add_argument("--data")
    p.add_argument("--report")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("build-corpus", help="rebuild data/corpus.csv and data/test.csv from the authored JSONL")
    p.add_argument("--data", default="data")
    p.set_defaults(func=cmd_build_corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from app.artifact import ModelError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ModelError, ValueError, FileNotFoundError) as exc:
        print(f"triage: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
