"""The `triage` command line: parses arguments, calls the core, prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from app.model import Thresholds


def _settings() -> Settings:
    return Settings.from_env()


def _data_dir(args: argparse.Namespace) -> Path:
    """The --data folder, or the settings' data folder."""
    return Path(args.data) if args.data else _settings().data_dir


def _command(
    subparsers: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help: str
) -> argparse.ArgumentParser:
    """A subcommand whose parsed arguments `main` hands to `func`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    parser.set_defaults(func=func)
    return parser


def _data_option(parser: argparse.ArgumentParser, what: str = "data folder") -> None:
    parser.add_argument("--data", help=f"{what} (default: TRIAGE_DATA_DIR or data/)")


def _model_option(parser: argparse.ArgumentParser, what: str = "model store") -> None:
    parser.add_argument("--model", help=f"{what} (default: TRIAGE_MODEL_DIR or model/)")


def _model_dir(args: argparse.Namespace) -> Path:
    """The --model store, or the settings' model store."""
    return Path(args.model) if args.model else _settings().model_dir


def cmd_build_corpus(args: argparse.Namespace) -> int:
    from app.first_contacts import CORPUS_FILE, TEST_FILE, build_corpus

    data_dir = Path(args.data)
    train, test = build_corpus(data_dir)
    train.to_csv(data_dir / CORPUS_FILE, index=False)
    test.to_csv(data_dir / TEST_FILE, index=False)
    print(f"wrote {data_dir / CORPUS_FILE} ({len(train)} rows) and {data_dir / TEST_FILE} ({len(test)} rows)")
    return 0


def cmd_corpus_build(args: argparse.Namespace) -> int:
    from app.corpus import build_inboxes, inboxes_dir

    data_dir = _data_dir(args)
    counts = build_inboxes(data_dir)
    root = inboxes_dir(data_dir)
    print(
        f"rendered {counts['train']} training inboxes into {root / 'train'} "
        f"and {counts['test']} test inboxes into {root / 'test'}"
    )
    return 0


def cmd_corpus_stats(args: argparse.Namespace) -> int:
    from app.corpus import inboxes_dir
    from app.inbox_stats import format_comparison, measure_exports

    data_dir = _data_dir(args)
    for split in ("train", "test"):
        folders = sorted(p for p in (inboxes_dir(data_dir) / split).glob("*") if p.is_dir())
        if folders:
            print(f"## {split}: {len(folders)} inboxes\n")
            print(format_comparison(measure_exports(folders)))
            print()
    return 0


def cmd_relabel_tasks(args: argparse.Namespace) -> int:
    from app.corpus import inboxes_dir
    from app.relabel import make_tasks
    from app.simulated import iter_sources, load_source

    data_dir = _data_dir(args)
    root = inboxes_dir(data_dir)
    paths = [p for p in iter_sources([root / "src"]) if not args.only or p.parent.name in args.only]
    sources = [load_source(p) for p in paths]
    tasks = make_tasks(sources, args.share, args.hands, seed=args.seed)
    folder = root / "relabel" / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for hand, rows in tasks.items():
        path = folder / f"{hand}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} items")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from app.corpus import inboxes_dir
    from app.relabel import agreement, labelled_items, read_answers
    from app.simulated import iter_sources, load_source

    settings = _settings()
    data_dir = _data_dir(args)
    root = inboxes_dir(data_dir)
    authored = {}
    for path in iter_sources([root / "src"]):
        for item in labelled_items(load_source(path)):
            authored[item.id] = item.label
    answer_files = sorted((root / "relabel" / "answers").glob("*.jsonl"))
    answers = read_answers(answer_files)
    report = agreement(authored, answers)
    report.update(hands=len(answer_files), share_of_items=round(report["n"] / max(len(authored), 1), 4))
    settled = root / "relabel" / "settled.json"
    if settled.is_file():
        decisions = json.loads(settled.read_text(encoding="utf-8"))
        report["settled"] = {
            "kept": sum(d["final"] == d["author"] for d in decisions),
            "changed": sum(d["final"] != d["author"] for d in decisions),
        }
    out = Path(args.report) if args.report else settings.reports_dir / "labeller_agreement.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{report['n']} items relabelled ({report['share_of_items']:.1%}), agreement {report['observed_agreement']:.1%}, "
        f"Cohen's kappa {report['cohen_kappa']:.3f}, {len(report['disagreements'])} disagreements; wrote {out}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from app.metrics import format_report
    from app.train import train_and_save

    settings = _settings()
    data_dir = _data_dir(args)
    out_dir = Path(args.out) if args.out else settings.model_dir
    start = time.perf_counter()
    result = train_and_save(data_dir, out_dir, folds=args.folds, force=args.force, n_jobs=settings.train_jobs)
    elapsed = time.perf_counter() - start
    for name, report in result.reports.items():
        print(format_report(name, report))
    m = result.manifest
    print(
        f"temperature {m['temperature']:.3f}; thresholds review {m['thresholds']['review']:.2f}, "
        f"spam {m['thresholds']['spam']:.2f}; {m['n_features']} features"
    )
    training_report = settings.reports_dir / "training.json"
    training_report.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model_version": m["version"], "seconds": round(elapsed, 1), "params": m["params"], **result.reports}
    training_report.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {training_report}")
    print(f"saved {m['version']} to {result.extra['path']} in {elapsed:.1f} s: {result.extra['outcome']}")
    return 1 if result.extra["outcome"] == "rejected" else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from app.artifact import load_model
    from app.corpus import rendered_inboxes
    from app.evaluate import evaluate_test_inboxes
    from app.metrics import format_report
    from app.scoring import Scorer

    settings = _settings()
    model = load_model(_model_dir(args))
    data_dir = _data_dir(args)
    reports = evaluate_test_inboxes(Scorer(model), rendered_inboxes(data_dir, "test"))
    for name in ("test_inboxes_text", "test_inboxes_export"):
        print(format_report(f"{model.version}: {name}", reports[name]))
    for hand, figures in reports["test_hands"].items():
        print(
            f"test hand {hand} ({figures['inboxes']} inboxes): macro-F1 text {figures['text']['macro_f1']:.3f}, "
            f"export {figures['export']['macro_f1']:.3f}"
        )
    out = Path(args.report) if args.report else settings.reports_dir / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = model.manifest.get("metrics", {})
    payload = {
        "model_version": model.version,
        "data": str(rendered_inboxes(data_dir, "test")),
        "grouped_cv_text": metrics.get("grouped_cv_text"),
        "grouped_cv_export": metrics.get("grouped_cv_export"),
        **reports,
        "thresholds": model.manifest.get("thresholds"),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from app.artifact import load_model
    from app.items import Item
    from app.scoring import Scorer

    model = load_model(_model_dir(args))
    verdict = Scorer(model).score([Item(text=args.text, kind=args.kind)])[0]
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
    data_dir = _data_dir(args)
    out = Path(args.report) if args.report else settings.reports_dir / "model_selection.json"
    compare_models(data_dir, out, names=args.only or None, folds=args.folds, print_fn=print, n_jobs=settings.train_jobs)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "app.api:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        workers=args.workers if args.workers is not None else settings.workers,
        log_level=args.log_level,
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from app.batch import format_counts, format_summary, score_file, write_rollup

    result = score_file(
        args.inputs,
        args.output,
        format=args.format,
        me=args.me,
        model_dir=args.model,
        lists_file=args.lists,
        jobs=args.jobs,
        progress=False if args.quiet else None,
        summary=args.summary,
        n_reasons=args.reasons,
        engine=args.engine,
        scheduler=args.scheduler,
    )
    for line in format_counts(result):
        print(line)
    if args.summary:
        for line in format_summary(result):
            print(line)
    if args.by == "conversation" and result.scored:
        path = write_rollup(Path(args.output), model_dir=args.model)
        print(f"wrote one verdict per conversation to {path}")
    if args.report and result.scored:
        from app.report import write_report

        write_report(Path(args.output), Path(args.report), _report_thresholds(args))
        print(f"wrote the report {args.report}")
    if not args.quiet:
        rate = result.read / result.seconds if result.seconds else 0.0
        print(f"wrote {result.output} in {result.seconds:.1f} s ({rate:,.0f} rows/s, {result.jobs} jobs)")
    if result.read == 0:
        print("triage: error: nothing could be read from the input", file=sys.stderr)
        return 1
    if result.scored == 0:
        print("triage: error: nothing could be scored", file=sys.stderr)
        return 1
    return 0


def _report_thresholds(args: argparse.Namespace) -> Thresholds | None:
    """The current model's thresholds, so the report's per-conversation verdicts match the rows'."""
    from app.artifact import ModelError, read_thresholds

    try:
        return read_thresholds(_model_dir(args))
    except ModelError as exc:
        print(f"note: no model to read thresholds from ({exc}); the report uses the defaults", file=sys.stderr)
        return None


def cmd_report(args: argparse.Namespace) -> int:
    from app.report import write_report

    n = write_report(Path(args.scored), Path(args.output), _report_thresholds(args))
    print(f"wrote {args.output} ({n} scored items)")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from app.retrain import retrain

    settings = _settings()
    if not args.add and not args.from_feedback:
        print("triage: error: nothing to add: give --add FILE... and/or --from-feedback", file=sys.stderr)
        return 2
    report = retrain(
        _data_dir(args),
        _model_dir(args),
        add=[Path(p) for p in args.add],
        feedback_db=settings.db_path if args.from_feedback else None,
        dry_run=args.dry_run,
        force=args.force,
        n_jobs=settings.train_jobs,
    )
    return 1 if report.decision == "rejected" else 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from app.artifact import list_versions, version_status

    store = _model_dir(args)
    versions = list_versions(store)
    if not versions:
        print(f"no versions in {store}")
        return 1
    print(f"{'':2}{'version':<30}{'created':<27}{'status':<12}{'test macro-F1':>14}{'cv macro-F1':>13}")
    for m in versions:
        metrics = m.get("metrics", {})
        test = (metrics.get("test_inboxes_export") or metrics.get("independent_test") or {}).get("macro_f1")
        cv = (metrics.get("grouped_cv_export") or metrics.get("grouped_cv") or {}).get("macro_f1")
        print(
            f"{'*' if m['current'] else ' ':2}{m['version']:<30}{m.get('created_at', ''):<27}{version_status(store, m):<12}"
            f"{f'{test:.4f}' if test is not None else '-':>14}{f'{cv:.4f}' if cv is not None else '-':>13}"
        )
    return 0


def cmd_model_switch(args: argparse.Namespace) -> int:
    """`model rollback` and `model promote`: point the store at another version."""
    from app import artifact

    move = artifact.rollback if args.model_command == "rollback" else artifact.promote
    before, after = move(_model_dir(args), args.version)
    print(f"current model: {after} (was {before})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage", description="Triage LinkedIn invites and messages: genuine, sales_pitch or spam, with the evidence."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "train", cmd_train, "train a model on the simulated inboxes and save a new version")
    _data_option(p, "data folder with inboxes/train")
    p.add_argument("--out", help="model store to write into (default: TRIAGE_MODEL_DIR or model/)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds, whole inboxes held out (default: 5)")
    p.add_argument("--force", action="store_true", help="make the new model current even if the gate refuses")

    p = _command(sub, "evaluate", cmd_evaluate, "evaluate a model on the independent test inboxes; writes reports/metrics.json")
    _model_option(p, "model store or version folder")
    _data_option(p, "data folder with inboxes/test")
    p.add_argument("--report", help="where to write the metrics JSON (default: reports/metrics.json)")

    p = sub.add_parser("corpus", help="the simulated-inbox corpus: render it, measure it")
    corpus_sub = p.add_subparsers(dest="corpus_command", required=True)
    q = _command(
        corpus_sub,
        "build",
        cmd_corpus_build,
        "render data/inboxes/src/*/*.json into LinkedIn exports under train/ and test/",
    )
    _data_option(q)
    q = _command(corpus_sub, "stats", cmd_corpus_stats, "the rendered inboxes' shape beside the real figures of FIELD_NOTES.md")
    _data_option(q)
    q = _command(corpus_sub, "relabel-tasks", cmd_relabel_tasks, "sample items for a blind second labeller, split over hands")
    q.add_argument("--share", type=float, default=0.16, help="share of each inbox's items (default 0.16)")
    q.add_argument("--hands", nargs="+", required=True, help="the relabelling hands' ids (one task file each)")
    q.add_argument("--only", nargs="*", help="only these authoring hands")
    q.add_argument("--seed", type=int, default=0)
    _data_option(q)
    q = _command(
        corpus_sub,
        "agreement",
        cmd_agreement,
        "Cohen's kappa of the second labellers; writes reports/labeller_agreement.json",
    )
    _data_option(q)
    q.add_argument("--report")

    p = _command(sub, "predict", cmd_predict, "score one text and print the verdict with its reasons")
    p.add_argument("text")
    p.add_argument("--kind", choices=("message", "invite"), default="message")
    _model_option(p)
    p.add_argument("--json", action="store_true", help="print the full verdict as JSON")

    p = _command(sub, "compare", cmd_compare, "compare model alternatives in grouped cross-validation by inbox")
    _data_option(p)
    p.add_argument("--report")
    p.add_argument("--only", action="append", help="a candidate's name (repeatable; default: all)")
    p.add_argument("--folds", type=int, default=5)

    p = _command(sub, "serve", cmd_serve, "run the HTTP API (settings from TRIAGE_* variables; see /docs)")
    p.add_argument("--host", help="address to listen on (default: TRIAGE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: TRIAGE_PORT or 8000)")
    p.add_argument("--workers", type=int, help="worker processes, each with its own model (default: TRIAGE_WORKERS or 1)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))

    p = _command(sub, "score", cmd_score, "score a CSV, a JSONL file or a LinkedIn data export; writes .csv or .jsonl")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="CSV, JSONL, LinkedIn messages/Invitations CSV, export folder or .zip"
    )
    p.add_argument(
        "-o", "--output", required=True, help="output: .csv, .jsonl, or DIR/ for Parquet parts (errors go to OUTPUT.errors.csv)"
    )
    p.add_argument(
        "--format", choices=("auto", "csv", "jsonl", "linkedin"), default="auto", help="input format (default: by content)"
    )
    p.add_argument("--me", metavar="NAME_OR_URL", help="the LinkedIn account owner (default: inferred from the export)")
    p.add_argument("--jobs", type=int, help="worker processes (default: TRIAGE_BATCH_JOBS or all cores)")
    _model_option(p, "model store or version folder")
    p.add_argument("--lists", help="allow/deny lists file (default: TRIAGE_LISTS_FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the counts")
    p.add_argument(
        "--summary", action="store_true", help="print counts per verdict and review, the date range, top reasons and senders"
    )
    p.add_argument("--by", choices=("conversation",), help="also write one verdict per conversation to OUTPUT.conversations.csv")
    p.add_argument("--report", metavar="HTML", help="also write an HTML report of the scored rows")
    p.add_argument("--reasons", type=int, default=3, choices=range(0, 4), help="reasons per row, 0-3 (default 3)")
    p.add_argument(
        "--engine", choices=("local", "dask"), default="local", help='where to score: this machine, or a Dask cluster (".[dask]")'
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786); default: a local cluster")

    p = _command(sub, "report", cmd_report, "an HTML report of a scored CSV: verdicts over time, senders, review queue, replies")
    p.add_argument("scored", help="a CSV written by `triage score`")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    _model_option(p, "model store whose thresholds roll rows up")

    p = _command(sub, "retrain", cmd_retrain, "add labelled examples, train a candidate, gate it and promote it")
    p.add_argument("--add", nargs="*", default=[], metavar="FILE", help="labelled CSV or JSONL files (a label column)")
    p.add_argument("--from-feedback", action="store_true", help="use the service's feedback since the last retrain")
    p.add_argument("--dry-run", action="store_true", help="validate, train and compare, but change nothing")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    _data_option(p)
    _model_option(p)

    p = sub.add_parser("model", help="list model versions or roll back")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    q = _command(model_sub, "list", cmd_model_list, "versions, dates, metrics and which is current")
    _model_option(q)
    q = _command(model_sub, "rollback", cmd_model_switch, "make an earlier version current (default: the previous one)")
    q.add_argument("version", nargs="?")
    _model_option(q)
    q = _command(model_sub, "promote", cmd_model_switch, "make a named version current (e.g. forward again after a rollback)")
    q.add_argument("version", help="the version to make current (see `triage model list`)")
    _model_option(q)

    p = _command(
        sub,
        "build-corpus",
        cmd_build_corpus,
        "rebuild the first-contact corpus data/corpus.csv and data/test.csv (corpus v1)",
    )
    p.add_argument("--data", default="data")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from app.artifact import ModelError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:  # settings: name the variable, not the field
        for err in exc.errors():
            name = "TRIAGE_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
            print(f"triage: error: {name}: {err['msg']} (got {err.get('input')!r})", file=sys.stderr)
        return 2
    except (ModelError, ValueError, FileNotFoundError) as exc:
        print(f"triage: error: {exc}", file=sys.stderr)
        return 2
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a corrupt export zip
        print(f"triage: error: a zip file cannot be read: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, a file gone: one line, no traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"triage: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
