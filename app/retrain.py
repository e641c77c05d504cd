"""Retraining on newly labelled examples: validate, train a candidate, gate, promote.

1. New rows (CSV or JSONL, corpus columns or the service's item shape plus `label`,
   or the service's feedback store) are validated first; any bad row stops the run
   with its file, line and reason, and nothing changes.
2. Exact and near duplicates of the corpus are skipped; the same text with two labels
   is a conflict, reported and skipped.
3. Accepted rows are appended to `data/labelled/user/` (one CSV per run, never edited).
4. A candidate is trained on the corpus plus all user rows. User rows are spread over
   the cross-validation folds, so the candidate's out-of-fold scores on them are
   honest; the current model has never seen them.
5. The candidate is promoted only if macro-F1 on the frozen test inboxes falls by at most
   0.5 points and genuine-as-spam does not rise (or `force`); otherwise it is kept as a
   rejected version with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from app import artifact
from app.corpus import Example, inboxes_dir, load_inboxes
from app.inbox import detect_format, read_jsonl, read_plain_csv
from app.items import ITEM_FIELDS, Item
from app.metrics import classification_report
from app.model import LABELS
from app.text import prepare
from app.train import evaluate_examples, load_training_examples, train_model

USER_DIR = Path("labelled") / "user"
FEEDBACK_CURSOR = ".feedback_cursor"
NEAR_DUPLICATE_SIMILARITY = 0.92  # cosine of character n-gram TF-IDF vectors
MAX_MACRO_F1_DROP = 0.005
USER_COLUMNS = ("id", "label", *ITEM_FIELDS, "added_at", "origin")


class RetrainError(ValueError):
    """Retraining stopped before changing anything; `problems` lists file, line and reason."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message + ("\n" + "\n".join(f"  {p}" for p in problems) if problems else ""))
        self.problems = list(problems)


@dataclass
class NewRow:
    origin: str  # "file:line" or "feedback:id"
    label: str
    item: Item
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RetrainReport:
    accepted: list[NewRow] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    candidate_version: str | None = None
    current_version: str | None = None
    user_rows_file: Path | None = None


# --------------------------------------------------------------------------------------
# Reading and validating new rows
# --------------------------------------------------------------------------------------


def _labels_by_line(path: Path) -> dict[int, Any]:
    labels = {}
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    labels[n] = obj.get("label")
    return labels


def read_labelled_file(path: Path) -> tuple[list[NewRow], list[str]]:
    """Labelled rows of one CSV or JSONL file, and the problems found (file:line: reason)."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}: no such file"]
    try:
        fmt = detect_format(path)
    except ValueError as exc:
        return [], [f"{path}: {exc}"]
    rows: list[NewRow] = []
    problems: list[str] = []
    if fmt == "jsonl":
        labels = _labels_by_line(path)
        records: Iterable[Any] = read_jsonl(path)
    elif fmt == "csv":
        labels = {}
        try:
            records = list(read_plain_csv(path))
        except ValueError as exc:
            return [], [f"{path}: {exc}"]
    else:
        return [], [f"{path}: a {fmt} file is not a labelled file (expected CSV or JSONL with a label)"]
    for rec in records:
        where = f"{path}:{rec.line}"
        if rec.error:
            problems.append(f"{where}: {rec.error}")
            continue
        if rec.item is None:
            continue
        extra = {k.strip().lower(): v for k, v in rec.extra.items()}
        label = labels.get(rec.line) if fmt == "jsonl" else extra.get("label")
        label = str(label).strip().lower() if label is not None else ""
        if label not in LABELS:
            problems.append(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
            continue
        if rec.item.kind == "message" and not rec.item.text.strip():
            problems.append(f"{where}: a message with empty text")
            continue
        rows.append(NewRow(where, label, rec.item, extra))
    if not rows and not problems:
        problems.append(f"{path}: no rows")
    return rows, problems


def read_feedback_rows(db_path: Path, after_id: int | None) -> tuple[list[NewRow], int | None]:
    """Feedback stored by the service since `after_id`, and the last id read."""
    from app.feedback import list_feedback

    rows, last = [], after_id
    for rec in list_feedback(db_path, after_id=after_id):
        rows.append(NewRow(f"feedback:{rec.id}", rec.label, Item.from_mapping(rec.item)))
        last = rec.id
    return rows, last


def _text_key(item: Item) -> str:
    """Text as compared for duplicates: the model's normalised text with white space folded."""
    return " ".join(re.sub(r"[^\w\s]", " ", prepare(item).norm).split())


def screen_rows(rows: list[NewRow], known: Sequence[Example], report: RetrainReport) -> list[NewRow]:
    """Drop exact/near duplicates of the training rows and conflicting labels; record why."""
    known_keys: dict[str, str] = {}
    for ex in known:
        known_keys.setdefault(_text_key(ex.item), ex.label)
    by_key: dict[str, list[NewRow]] = {}
    for row in rows:
        by_key.setdefault(_text_key(row.item), []).append(row)
    kept: list[NewRow] = []
    for key, group in by_key.items():
        labels = {r.label for r in group}
        if key in known_keys and known_keys[key] not in labels | {None}:
            report.conflicts += [
                f"{r.origin}: labelled {r.label}, the corpus has the same text as {known_keys[key]}" for r in group
            ]
        elif len(labels) > 1:
            report.conflicts += [
                f"{r.origin}: labelled {r.label}, the same text is also labelled {', '.join(sorted(labels - {r.label}))}"
                for r in group
            ]
        elif key in known_keys and key:
            report.duplicates += [f"{r.origin}: exact duplicate of a corpus row" for r in group]
        else:
            kept.append(group[0])
            report.duplicates += [f"{r.origin}: exact duplicate of {group[0].origin}" for r in group[1:]]
    return _drop_near_duplicates(kept, [ex.item for ex in known], report)


def _drop_near_duplicates(rows: list[NewRow], known: list[Item], report: RetrainReport) -> list[NewRow]:
    """Rows whose longer text is nearly the same as a known one (character n-gram cosine) are duplicates."""
    texted = [r for r in rows if len(r.item.text.strip()) >= 40]  # short turns repeat by nature: only long texts
    long_known = [it.text for it in known if len(it.text.strip()) >= 40]
    if not texted or not long_known:
        return rows
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit(long_known)
    new = chars.transform([r.item.text for r in texted])
    old = chars.transform(long_known)
    best = (new @ old.T).max(axis=1).toarray().ravel()
    near = {id(r) for r, s in zip(texted, best, strict=True) if s >= NEAR_DUPLICATE_SIMILARITY}
    report.duplicates += [f"{r.origin}: near duplicate of a corpus row" for r in texted if id(r) in near]
    return [r for r in rows if id(r) not in near]


def user_frame(rows: list[NewRow], added_at: datetime) -> pd.DataFrame:
    """Accepted rows with their item fields, label, and when and where they came from."""
    records = []
    for n, row in enumerate(rows, 1):
        rec: dict[str, Any] = {k: getattr(row.item, k) for k in ITEM_FIELDS}
        rec.update(
            id=f"user-{added_at:%Y%m%d%H%M%S}-{n:05d}",
            label=row.label,
            added_at=added_at.isoformat(timespec="seconds"),
            origin=row.origin,
        )
        records.append(rec)
    return pd.DataFrame(records, columns=list(USER_COLUMNS))


def load_user_examples(data_dir: Path) -> list[Example]:
    """Every user-labelled row under data/labelled/user/, each its own cross-validation group."""
    folder = Path(data_dir) / USER_DIR
    out: list[Example] = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for row in frame.to_dict("records"):
            fields = {k: row.get(k) for k in ITEM_FIELDS if k in row}
            out.append(Example(Item.from_mapping(fields), row["label"], f"user:{row['id']}", "user", "user"))
    return out


# --------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "macro_f1": report["macro_f1"],
        "genuine_as_spam_rate": report["genuine_as_spam_rate"],
        "accuracy": report["accuracy"],
        "n": report["n"],
    }


def gate(current: dict[str, Any], candidate: dict[str, Any]) -> tuple[bool, str]:
    """Promote only if test macro-F1 drops by <= 0.5 points and genuine-as-spam does not rise."""
    drop = current["macro_f1"] - candidate["macro_f1"]
    if drop > MAX_MACRO_F1_DROP:
        return False, f"macro-F1 on the frozen test inboxes falls by {drop * 100:.2f} points (limit 0.5)"
    if candidate["genuine_as_spam_rate"] > current["genuine_as_spam_rate"]:
        return False, (
            f"genuine filed as spam rises from {current['genuine_as_spam_rate']:.2%} to "
            f"{candidate['genuine_as_spam_rate']:.2%} on the frozen test inboxes"
        )
    return True, (
        f"test macro-F1 {current['macro_f1']:.4f} -> {candidate['macro_f1']:.4f}, genuine as spam "
        f"{current['genuine_as_spam_rate']:.2%} -> {candidate['genuine_as_spam_rate']:.2%}"
    )


def format_comparison(comparison: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table printed by `triage retrain`."""
    lines = [f"{'':<34}{'current':>12}{'candidate':>12}"]
    for section, pair in comparison.items():
        cur, cand = pair.get("current") or {}, pair.get("candidate") or {}
        lines.append(f"{section} (n={cand.get('n', cur.get('n', 0))})")
        for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy"), ("genuine_as_spam_rate", "genuine as spam")):
            fmt = "{:>12.2%}" if key == "genuine_as_spam_rate" else "{:>12.4f}"
            cells = [fmt.format(d[key]) if key in d else f"{'-':>12}" for d in (cur, cand)]
            lines.append(f"  {name:<32}" + "".join(cells))
    return "\n".join(lines)


def retrain(
    data_dir: Path,
    model_dir: Path,
    add: Sequence[Path] = (),
    feedback_db: Path | None = None,
    dry_run: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> RetrainReport:
    """Validate new rows, train a candidate, compare it with the current model and gate it."""
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    report = RetrainReport()
    rows: list[NewRow] = []
    problems: list[str] = []
    for path in add:
        got, bad = read_labelled_file(Path(path))
        rows += got
        problems += bad
    cursor_file = data_dir / USER_DIR / FEEDBACK_CURSOR
    last_feedback = None
    if feedback_db is not None:
        after = int(cursor_file.read_text().strip()) if cursor_file.is_file() else None
        got, last_feedback = read_feedback_rows(feedback_db, after)
        rows += got
        log(f"feedback: {len(got)} new labelled item(s) in {feedback_db}")
    if problems:
        raise RetrainError(f"{len(problems)} bad row(s): nothing was changed", problems)

    current = artifact.load_model(model_dir)
    report.current_version = current.version
    params = current.manifest.get("params")
    examples, extra = load_training_examples(data_dir, params)
    previous_user = load_user_examples(data_dir)
    report.accepted = screen_rows(rows, [*examples, *extra, *previous_user], report)
    for line in report.duplicates + report.conflicts:
        log(f"skipped {line}")
    log(
        f"{len(rows)} new row(s): {len(report.accepted)} accepted, {len(report.duplicates)} duplicate(s), "
        f"{len(report.conflicts)} conflict(s)"
    )

    now = datetime.now(UTC)
    new_frame = user_frame(report.accepted, now)
    if not dry_run and len(new_frame):
        report.user_rows_file = _append_user_rows(data_dir, new_frame, now)
    if not dry_run and last_feedback is not None:
        cursor_file.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_atomic(cursor_file, f"{last_feedback}\n")
    user = previous_user + [Example(r.item, r.label, f"user:new-{n}", "user", "user") for n, r in enumerate(report.accepted)]
    if not user:
        report.decision, report.reason = "nothing to do", "no user-labelled rows to train on"
        log(report.reason)
        return report

    result = train_model([*examples, *user], params=params, extra=extra)
    candidate = result.model
    report.candidate_version = candidate.version

    test = load_inboxes(inboxes_dir(data_dir) / "test")
    comparison: dict[str, dict[str, Any]] = {
        "frozen test inboxes": {
            "current": _summary(evaluate_examples(current, test, "export")),
            "candidate": _summary(evaluate_examples(candidate, test, "export")),
        },
    }
    cv = result.extra["cv"]
    user_at = np.arange(len(examples), len(examples) + len(user))
    comparison["user rows (candidate: cross-validated)"] = {
        "current": _summary(evaluate_examples(current, user, "export")),
        "candidate": _summary(
            classification_report(
                _softmax_t(cv.export[user_at], result.manifest["temperature"]), cv.y[user_at], candidate.thresholds
            )
        ),
    }
    report.comparison = comparison
    log(format_comparison(comparison))

    ok, reason = gate(comparison["frozen test inboxes"]["current"], comparison["frozen test inboxes"]["candidate"])
    report.reason = reason
    if dry_run:
        report.decision = "dry run: nothing promoted"
    elif ok or force:
        result.manifest.update(
            status="promoted", gate={"passed": ok, "reason": reason, "forced": force and not ok}, previous_version=current.version
        )
        candidate.manifest = result.manifest
        artifact.save_model(candidate, model_dir, result.manifest, make_current=True)
        artifact.record_history(model_dir, "promote", candidate.version, previous=current.version, reason=reason)
        report.decision = "promoted" + (" (forced)" if force and not ok else "")
    else:
        result.manifest.update(status="rejected", gate={"passed": False, "reason": reason})
        candidate.manifest = result.manifest
        artifact.save_model(candidate, model_dir, result.manifest, make_current=False)
        artifact.record_history(model_dir, "reject", candidate.version, previous=current.version, reason=reason)
        report.decision = "rejected"
    log(f"{report.decision}: {candidate.version} ({reason})")
    return report


def _append_user_rows(data_dir: Path, frame: pd.DataFrame, now: datetime) -> Path:
    folder = data_dir / USER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now:%Y%m%d-%H%M%S}.csv"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{now:%Y%m%d-%H%M%S}-{n}.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    frame[list(USER_COLUMNS)].to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def _softmax_t(decision: np.ndarray, temperature: float) -> np.ndarray:
    from app.model import softmax

    return softmax(decision / temperature)
