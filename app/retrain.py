"""Retraining on a user's labelled rows: validate, weigh them, train a candidate, gate, promote.

1. New rows (CSV or JSONL with a `label`: corpus columns, the service's item shape, or
   `triage score` output with a label column filled in; or the service's feedback store)
   are validated first; any bad row stops the run with its file, line and reason, and
   nothing changes. Rows whose label is left empty are counted and left out.
2. Exact and near duplicates of known rows are skipped; the same text with two labels is a
   conflict, reported and skipped. If nothing new is left, nothing is trained.
3. Accepted rows are appended to `data/labelled/user/` (one CSV per run, never edited).
4. The user rows' weight is chosen by cross-validation on them (`app.userfit`), and the
   candidate is trained on the corpus plus every user row at that weight.
5. The gate (`app.gate`) judges the candidate on the user's rows first and uses the frozen
   test inboxes as a guard; the candidate is promoted, or kept as a rejected version.
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
from app.corpus import Example, inboxes_dir, load_inboxes, rendered_inboxes
from app.gate import format_comparison, judge, promote_or_keep, summary
from app.inbox import detect_format, read_jsonl, read_plain_csv
from app.items import ITEM_FIELDS, Item
from app.metrics import chance_better, classification_report, headline
from app.model import LABELS, TriageModel, decide
from app.text import prepare
from app.train import DEFAULT_PARAMS, USER_HAND, evaluate_examples, fit_pipeline, fold_temperature, load_training_examples
from app.userfit import UserFit, choose_user_weight
from app.workers import DEFAULT_TRAIN_JOBS

USER_DIR = Path("labelled") / "user"
FEEDBACK_CURSOR = ".feedback_cursor"
NEAR_DUPLICATE_SIMILARITY = 0.92  # cosine of character n-gram TF-IDF vectors
USER_COLUMNS = ("id", "label", *ITEM_FIELDS, "group", "added_at", "origin")
GROUP_COLUMNS = ("conversation_id", "conversation", "thread_id")  # a labels file's conversation, when it has one


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

    @property
    def group(self) -> str | None:
        """The conversation (else the sender) the row belongs to, so that cross-validation keeps threads whole."""
        for key in GROUP_COLUMNS:
            if self.extra.get(key):
                return f"conversation:{self.extra[key]}"
        sender = self.item.sender_profile_url or self.item.sender_name
        return f"sender:{sender}" if sender else None


@dataclass
class RetrainReport:
    accepted: list[NewRow] = field(default_factory=list)
    unlabelled: int = 0
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


def normal_label(value: Any) -> str:
    """'Sales pitch', 'sales-pitch ' -> 'sales_pitch'; None -> ''."""
    return "_".join(str(value).strip().lower().replace("-", " ").split()) if value is not None else ""


def read_labelled_file(path: Path) -> tuple[list[NewRow], list[str], int]:
    """Labelled rows of one CSV or JSONL file, the problems found (file:line: reason), and how many had no label."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}: no such file"], 0
    try:
        fmt = detect_format(path)
    except ValueError as exc:
        return [], [f"{path}: {exc}"], 0
    rows: list[NewRow] = []
    problems: list[str] = []
    unlabelled = 0
    if fmt == "jsonl":
        labels = _labels_by_line(path)
        records: Iterable[Any] = read_jsonl(path)
    elif fmt == "csv":
        labels = {}
        try:
            records = list(read_plain_csv(path))
        except ValueError as exc:
            return [], [f"{path}: {exc}"], 0
    else:
        return [], [f"{path}: a {fmt} file is not a labelled file (expected CSV or JSONL with a label)"], 0
    for rec in records:
        where = f"{path}:{rec.line}"
        extra = {k.strip().lower(): v for k, v in rec.extra.items()}
        label = normal_label(labels.get(rec.line) if fmt == "jsonl" else extra.get("label"))
        if not label:
            unlabelled += 1  # e.g. the rows of a `triage score` output the user did not label
            continue
        if label not in LABELS:
            problems.append(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
            continue
        if rec.error:
            problems.append(f"{where}: {rec.error}")
            continue
        if rec.item is None or not rec.item.text.strip():
            problems.append(f"{where}: a labelled row with empty text")
            continue
        rows.append(NewRow(where, label, rec.item, extra))
    if not rows and not problems:
        problems.append(f"{path}: no labelled rows" + (f" ({unlabelled} row(s) with an empty label)" if unlabelled else ""))
    return rows, problems, unlabelled


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
            group=row.group or "",
            added_at=added_at.isoformat(timespec="seconds"),
            origin=row.origin,
        )
        records.append(rec)
    return pd.DataFrame(records, columns=list(USER_COLUMNS))


def load_user_examples(data_dir: Path) -> list[Example]:
    """Every user-labelled row under data/labelled/user/; `inbox` is its cross-validation group, `file` its file."""
    folder = Path(data_dir) / USER_DIR
    out: list[Example] = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for n, row in enumerate(frame.to_dict("records"), 1):
            fields = {k: row.get(k) for k in ITEM_FIELDS if k in row}
            group = row.get("group") or f"row:{path.name}:{n}"
            out.append(Example(Item.from_mapping(fields), row["label"], group, USER_HAND, "user", path.name, n))
    return out


# --------------------------------------------------------------------------------------
# Training the candidate and gating it
# --------------------------------------------------------------------------------------


def unseen_by(current_manifest: dict[str, Any], user: Sequence[Example]) -> np.ndarray:
    """Indexes of user rows the current model did not train on (it lists the user files it used)."""
    used = set((current_manifest.get("training_data") or {}).get("user_files") or [])
    return np.array([i for i, ex in enumerate(user) if ex.file not in used], dtype=int)


def retrain(
    data_dir: Path,
    model_dir: Path,
    add: Sequence[Path] = (),
    feedback_db: Path | None = None,
    dry_run: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
    n_jobs: int = DEFAULT_TRAIN_JOBS,
) -> RetrainReport:
    """Validate new rows, train a candidate with them weighted, compare it with the current model and gate it."""
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    report = RetrainReport()
    rows: list[NewRow] = []
    problems: list[str] = []
    for path in add:
        got, bad, unlabelled = read_labelled_file(Path(path))
        rows += got
        problems += bad
        report.unlabelled += unlabelled
    cursor_file = data_dir / USER_DIR / FEEDBACK_CURSOR
    last_feedback = None
    if feedback_db is not None:
        after = int(cursor_file.read_text().strip()) if cursor_file.is_file() else None
        got, last_feedback = read_feedback_rows(feedback_db, after)
        rows += got
        log(f"feedback: {len(got)} new labelled item(s) in {feedback_db}")
    if problems:
        raise RetrainError(f"{len(problems)} bad row(s): nothing was changed", problems)
    if report.unlabelled:
        log(f"{report.unlabelled} row(s) without a label were left out (fill the label column to use them)")

    current = artifact.load_model(model_dir)
    report.current_version = current.version
    examples, extra = load_training_examples(data_dir, {**DEFAULT_PARAMS, **(current.manifest.get("params") or {})})
    if not examples:
        raise RetrainError(f"no corpus under {inboxes_dir(data_dir) / 'train'}: run `triage corpus build` first")
    previous_user = load_user_examples(data_dir)
    report.accepted = screen_rows(rows, [*examples, *extra, *previous_user], report)
    for line in report.duplicates + report.conflicts:
        log(f"skipped {line}")
    log(
        f"{len(rows)} new row(s): {len(report.accepted)} accepted, {len(report.duplicates)} duplicate(s), "
        f"{len(report.conflicts)} conflict(s)"
    )
    if not report.accepted:
        report.decision = "nothing to do"
        report.reason = (
            f"all {len(rows)} row(s) are duplicates of known rows or conflicts: nothing new to learn, no model trained"
            if rows
            else "no labelled rows to add: no model trained"
        )
        log(report.reason)
        return report

    now = datetime.now(UTC)
    new_frame = user_frame(report.accepted, now)
    new_file = f"{now:%Y%m%d-%H%M%S}.csv"
    if not dry_run:
        report.user_rows_file = _append_user_rows(data_dir, new_frame, now)
        new_file = report.user_rows_file.name
    if not dry_run and last_feedback is not None:
        cursor_file.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_atomic(cursor_file, f"{last_feedback}\n")
    user = previous_user + [
        Example(r.item, r.label, r.group or f"row:{new_file}:{n}", USER_HAND, "user", new_file, n)
        for n, r in enumerate(report.accepted, 1)
    ]

    log(f"choosing the weight of {len(user)} user row(s) by cross-validation on them...")
    candidate, fit = train_candidate(current, examples, extra, user, n_jobs=n_jobs, log=log)
    manifest = _candidate_manifest(current.manifest, candidate.manifest["params"], fit, user, now)
    candidate.manifest = manifest
    report.candidate_version = candidate.version

    test = load_inboxes(rendered_inboxes(data_dir, "test"))
    comparison: dict[str, dict[str, Any]] = {}
    candidate_test: dict[str, Any] = {}
    if test:
        candidate_test = evaluate_examples(candidate, test, "export")
        comparison["frozen test inboxes"] = {
            "current": summary(evaluate_examples(current, test, "export")),
            "candidate": summary(candidate_test),
        }
    unseen = unseen_by(current.manifest, user)
    user_pair: dict[str, Any] | None = None
    candidate_user: dict[str, Any] = {}
    if fit.oof and len(unseen):
        y = np.array([LABELS.index(user[i].label) for i in unseen])
        current_proba = current.predict_proba([user[i].item for i in unseen])
        candidate_user = classification_report(fit.chosen_oof[unseen], y, current.thresholds)
        user_pair = {
            "current": summary(classification_report(current_proba, y, current.thresholds)),
            "candidate": summary(candidate_user),
            "chance_better": chance_better(
                y,
                decide(current_proba, current.thresholds)[0],
                decide(fit.chosen_oof[unseen], current.thresholds)[0],
                [user[i].inbox for i in unseen],
            ),
        }
        comparison["your new rows (candidate cross-validated)"] = user_pair
    report.comparison = comparison
    log(format_comparison(comparison))
    if "frozen test inboxes" not in comparison:
        raise RetrainError(f"no test inboxes under {inboxes_dir(data_dir) / 'test'}: the gate needs them")
    decision = judge(comparison["frozen test inboxes"], user_pair, len(unseen))
    # Only what was measured on this candidate: the base's cross-validation figures are not its own.
    manifest["metrics"] = {"test_inboxes_export": headline(candidate_test)}
    if candidate_user:
        manifest["metrics"]["user_rows_cv"] = headline(candidate_user)
    report.reason = decision.reason
    report.decision = promote_or_keep(candidate, model_dir, manifest, decision, current.version, force, dry_run, log)
    return report


def train_candidate(
    current: TriageModel,
    examples: Sequence[Example],
    extra: Sequence[Example],
    user: Sequence[Example],
    n_jobs: int = DEFAULT_TRAIN_JOBS,
    log: Callable[[str], None] = print,
) -> tuple[TriageModel, UserFit]:
    """The current model's recipe refitted on the corpus plus the user rows at a cross-validated weight.

    Temperature and thresholds are the current model's (they were calibrated on the corpus).
    """
    params = {**DEFAULT_PARAMS, **(current.manifest.get("params") or {})}
    temperature = float(current.manifest.get("temperature") or 1.0)
    fit = choose_user_weight(examples, extra, user, params, current.thresholds, temperature, n_jobs=n_jobs)
    for share, score in fit.scores.items():
        log(f"  share {share:.0%}: macro-F1 {score['macro_f1']:.4f}, genuine as spam {score['genuine_as_spam_rate']:.2%}")
    log(f"user rows weigh {fit.weight:.1f} each ({fit.share:.0%} of the corpus's weight); training the candidate...")
    cand_params = {**params, "user_weight": fit.weight}
    pipe = fold_temperature(fit_pipeline([*examples, *user], cand_params, extra), temperature)
    return TriageModel(pipe, current.thresholds, {"params": cand_params}), fit


def _candidate_manifest(
    base: dict[str, Any], params: dict[str, Any], fit: UserFit, user: Sequence[Example], now: datetime
) -> dict[str, Any]:
    """The current model's manifest, updated for a candidate trained with user rows."""
    manifest = json.loads(json.dumps({k: v for k, v in base.items() if k not in ("artifact_sha256", "gate", "status")}))
    manifest.update(
        version=f"v{now:%Y%m%d-%H%M%S}",
        created_at=now.isoformat(timespec="seconds"),
        params=params,
        base_version=base.get("base_version") or base.get("version"),
        user_weighting={
            "share": fit.share,
            "weight": round(fit.weight, 3),
            "folds": fit.folds,
            "cv_by_share": {str(k): v for k, v in fit.scores.items()},
        },
    )
    data = dict(manifest.get("training_data") or {})
    data.update(user_rows=len(user), user_files=sorted({ex.file for ex in user}))
    manifest["training_data"] = data
    return manifest


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
