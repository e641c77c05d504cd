"""Batch scoring: stream an inbox through the model in chunks, in parallel, to CSV or JSONL.

`score_file` reads records with `app.inbox.read_items`, sends chunks of items to N
worker processes (each loads the model once), and writes one output row per scored
item in input order, plus OUTPUT.errors.csv for rows that failed. Memory stays flat:
only a few chunks are in flight at a time.

Chunks are scored by `ChunkScorer`, a vectorised equivalent of
`TriageModel.score_item(item, n_reasons=3)`: the same features (the model's own
`prepare`, `word_ngrams` and `signal_values`; character n-grams looked up for the
whole chunk at once with integer keys, per distinct word where the featurizer works
word by word), the same decision values, probabilities,
abstain rule and top reasons, without the per-character offset maps that only span
display needs. It checks itself against the featurizer when it starts and falls back
to `ItemFeaturizer.transform` if they ever disagree.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from app.features import ChunkFeaturizer, Item
from app.inbox import Inbox, Record, read_items
from app.model import LABELS, TriageModel, decide, describe, softmax

SCORE_COLUMNS = (
    "verdict",
    "confidence",
    "p_genuine",
    "p_sales_pitch",
    "p_spam",
    "needs_review",
    "reason_1",
    "reason_2",
    "reason_3",
)
ERROR_COLUMNS = ("file", "line", "id", "reason")
METHODS = ("auto", "fast", "vector", "item")


_CHECK_TEXTS = (
    "",
    "Hi Anna, we met at the DevFest meetup: would love to stay in touch!",
    "HELLO   dear!!  Earn $500/day from home 💰💰 WhatsApp +1 (555) 010-9999 now",
    "<p class='x'>Hi %FIRSTNAME%,</p><br>Our agency helps <a href='https://bit.ly/x'>brands</a> grow &amp; scale&nbsp;fast",
    "Grüße aus München — İstanbul'dan selamlar; ΣΊΣΥΦΟΣ ﬁnance ß\tt\u00a0x\u2028y",
    "just following up on my last message about a quick 15 min call? calendly.com/joe/15min",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3",
    "日本語のメッセージです。よろしくお願いします",
)


def _check_items() -> list[Item]:
    out = [Item(text=t) for t in _CHECK_TEXTS]
    out += [Item(text=t, kind="invite", sender_name="Joe Smith", recipient_name="Anna Lee") for t in _CHECK_TEXTS[:3]]
    return out


# --------------------------------------------------------------------------------------
# Scoring a chunk
# --------------------------------------------------------------------------------------


@dataclass
class ChunkResult:
    """Scores of one chunk: row i is item i, unless i is in `errors`."""

    proba: np.ndarray
    verdict: np.ndarray
    review: np.ndarray
    reasons: list[tuple[str, ...]]
    errors: dict[int, str] = field(default_factory=dict)


def _merge(parts: Sequence[ChunkResult]) -> ChunkResult:
    """One result from consecutive parts, in order."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return ChunkResult(np.zeros((0, 3)), np.zeros(0, dtype=int), np.zeros(0, dtype=bool), [])
    errors, offset = {}, 0
    for part in parts:
        errors.update({offset + i: reason for i, reason in part.errors.items()})
        offset += len(part.reasons)
    return ChunkResult(
        np.vstack([p.proba for p in parts]),
        np.concatenate([p.verdict for p in parts]),
        np.concatenate([p.review for p in parts]),
        [r for p in parts for r in p.reasons],
        errors,
    )


def reason_text(description: str, contribution: float) -> str:
    return f"{description} ({contribution:+.2f})"


class ChunkScorer:
    """Scores lists of items like `score_item(item, n_reasons)`, a chunk at a time.

    method: 'fast' (vectorised n-grams), 'vector' (the featurizer's transform, then
    vectorised scores and reasons), 'item' (`score_item` per item) or 'auto' (fast
    when its self-check passes, else vector).
    """

    def __init__(self, model: TriageModel, n_reasons: int = 3, method: str = "auto", batch_rows: int = 500):
        self.batch_rows = max(batch_rows, 1)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.model = model
        self.n_reasons = n_reasons
        clf = model.pipeline[-1]
        self.weights = np.ascontiguousarray(clf.coef_.T, dtype=np.float64)
        self.intercept = np.asarray(clf.intercept_, dtype=np.float64)
        self._reason_cache: dict[int, str] = {}
        self.fast: ChunkFeaturizer | None = None
        self.method = "item" if method == "item" else "vector"
        if method in ("auto", "fast"):
            fast = ChunkFeaturizer(model.featurizer)
            if fast.ok and self._agrees(fast):
                self.fast, self.method = fast, "fast"
            elif method == "fast":
                raise ValueError("the fast featurizer does not match this model's featurizer")

    def _agrees(self, fast: ChunkFeaturizer) -> bool:
        items = _check_items()
        try:
            diff = fast.transform(items) - self.model.featurizer.transform(items)
        except Exception:
            return False
        return diff.nnz == 0 or float(abs(diff).max()) < 1e-9

    def features(self, items: Sequence[Item]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The feature matrix and each stored value's rank in `ItemFeaturizer.row` order."""
        if self.fast is not None:
            return self.fast.transform_ranked(items)
        X = self.model.featurizer.transform(items)
        return X, np.arange(X.nnz)

    def _describe(self, j: int) -> str:
        text = self._reason_cache.get(j)
        if text is None:
            text = describe(str(self.model.feature_names[j]))
            if len(self._reason_cache) < 200_000:
                self._reason_cache[j] = text
        return text

    def score(self, items: Sequence[Item]) -> ChunkResult:
        """Scores for a chunk; an item that cannot be scored is reported in `errors`, not raised.

        Works through the chunk `batch_rows` items at a time, which bounds the numpy
        temporaries (about 100 kB per item) without costing speed.
        """
        parts = [self._score_part(items[i : i + self.batch_rows]) for i in range(0, len(items), self.batch_rows)]
        return _merge(parts)

    def _score_part(self, items: Sequence[Item]) -> ChunkResult:
        try:
            return self._score(items)
        except Exception:
            pass  # find the culprit: score the items one by one
        parts = []
        for item in items:
            try:
                parts.append(self._score([item]))
            except Exception as exc:  # one bad item must not sink the chunk
                failed = ChunkResult(np.full((1, 3), np.nan), np.zeros(1, dtype=int), np.zeros(1, dtype=bool), [()])
                failed.errors[0] = f"scoring failed: {type(exc).__name__}: {exc}"
                parts.append(failed)
        return _merge(parts)

    def _score(self, items: Sequence[Item]) -> ChunkResult:
        if self.method == "item":
            verdicts = [self.model.score_item(it, n_reasons=self.n_reasons) for it in items]
            return ChunkResult(
                np.array([[v.scores[lab] for lab in LABELS] for v in verdicts]),
                np.array([LABELS.index(v.verdict) for v in verdicts]),
                np.array([v.needs_review for v in verdicts]),
                [tuple(reason_text(r.description, r.contribution) for r in v.reasons) for v in verdicts],
            )
        X, ranks = self.features(items)
        proba = softmax(np.asarray(X @ self.weights) + self.intercept)
        verdict, review = decide(proba, self.model.thresholds)
        return ChunkResult(proba, verdict, review, self._reasons(X, ranks, verdict))

    def _reasons(self, X: sp.csr_matrix, ranks: np.ndarray, verdict: np.ndarray) -> list[tuple[str, ...]]:
        """Top positive contributions to each row's verdict, largest first; ties go to the lower rank."""
        n = X.shape[0]
        out: list[list[str]] = [[] for _ in range(n)]
        if self.n_reasons <= 0 or X.nnz == 0:
            return [tuple(r) for r in out]
        lengths = np.diff(X.indptr)
        row_of = np.repeat(np.arange(n), lengths)
        contrib = X.data * self.weights[X.indices, verdict[row_of]]
        left = np.where(contrib > 0, contrib, -np.inf)
        filled = lengths > 0
        starts = X.indptr[:-1][filled]
        for _ in range(self.n_reasons):
            best = np.full(n, -np.inf)
            best[filled] = np.maximum.reduceat(left, starts)
            at = np.flatnonzero((left == best[row_of]) & (left > 0))
            if not len(at):
                break
            at = at[np.lexsort((ranks[at], row_of[at]))]
            _, first = np.unique(row_of[at], return_index=True)
            at = at[first]
            for pos, r in zip(at.tolist(), row_of[at].tolist(), strict=True):
                out[r].append(reason_text(self._describe(int(X.indices[pos])), float(contrib[pos])))
            left[at] = -np.inf
        return [tuple(r) for r in out]


# --------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------

_WORKER: ChunkScorer | Exception | None = None


def _load(model: TriageModel | str | Path) -> TriageModel:
    if isinstance(model, TriageModel):
        return model
    from app.artifact import load_model

    return load_model(Path(model))


def _init_worker(model: TriageModel | str | Path, n_reasons: int, method: str) -> None:
    global _WORKER
    try:
        _WORKER = ChunkScorer(_load(model), n_reasons, method)
    except Exception as exc:  # reported on the first chunk, with its message
        _WORKER = exc


def _score_in_worker(items: list[Item]) -> ChunkResult:
    if isinstance(_WORKER, Exception):
        raise _WORKER
    assert _WORKER is not None
    return _WORKER.score(items)


class _Done:
    """A finished result with the interface of a Future (for --jobs 1)."""

    def __init__(self, value: ChunkResult):
        self.value = value

    def result(self) -> ChunkResult:
        return self.value


def default_jobs() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:
        return max(os.cpu_count() or 1, 1)


def _ready() -> bool:
    return True


def _pool(jobs: int, model: TriageModel | str | Path, n_reasons: int, method: str) -> ProcessPoolExecutor:
    """Worker processes that load the model as they start.

    Fork (Linux, and only while this process has a single thread) starts them at once
    with the modules already imported; otherwise forkserver (or spawn), which is safe in
    a threaded caller such as the API server.
    """
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        name = "fork"
    else:
        name = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(name)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(model, n_reasons, method))
    pool.submit(_ready)  # start the workers now: they load the model while this process reads
    return pool


# --------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------


class _Writer:
    """Rows to a .csv or .jsonl file, written under a temporary name and renamed at the end."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = path
        self.columns = list(columns)
        self.jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.fh: IO[str] | None = None
        self.rows = 0

    def _open(self) -> IO[str]:
        if self.fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.tmp, "w", encoding="utf-8", newline="")
            if not self.jsonl:
                self._csv = csv.writer(self.fh, lineterminator="\n")
                self._csv.writerow(self.columns)
        return self.fh

    def write(self, values: Sequence[Any]) -> None:
        fh = self._open()
        self.rows += 1
        if self.jsonl:
            fh.write(json.dumps(dict(zip(self.columns, values, strict=True)), ensure_ascii=False) + "\n")
        else:
            self._csv.writerow(values)  # None is written as an empty field

    def commit(self) -> None:
        self._open().close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            Path(self.tmp).unlink(missing_ok=True)


def output_kind(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"the output must end in .csv or .jsonl, got {Path(path).name!r}")


def errors_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".errors.csv")


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Counts of a run; read == scored + sum(skipped) + failed."""

    read: int = 0
    scored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    output: Path | None = None
    errors_file: Path | None = None
    encodings: dict[str, str] = field(default_factory=dict)
    owner: str | None = None
    owner_how: str | None = None
    notes: list[str] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    top_senders: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1
    method: str = ""

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


def carried_columns(inbox: Inbox, score_columns: Sequence[str]) -> list[tuple[str, str]]:
    """(input name, output name) of the carried-through columns, renamed `input_X` on a clash."""
    taken = set(inbox.id_columns) | set(score_columns)
    extra = []
    for name in inbox.extra_columns:
        out = name
        while out in taken:
            out = "input_" + out
        taken.add(out)
        extra.append((name, out))
    return extra


def _output_columns(inbox: Inbox) -> tuple[list[str], list[tuple[str, str]]]:
    extra = carried_columns(inbox, SCORE_COLUMNS)
    return list(inbox.id_columns) + [out for _, out in extra] + list(SCORE_COLUMNS), extra


def _sender_label(ids: dict[str, Any]) -> str | None:
    name, url = ids.get("sender_name"), ids.get("sender_profile_url")
    if name and url:
        return f"{name} <{url}>"
    return name or url


def score_file(
    inputs: str | Path | IO[bytes] | Iterable[str | Path | IO[bytes]],
    output: str | Path,
    *,
    format: str = "auto",
    me: str | None = None,
    model: TriageModel | None = None,
    model_dir: str | Path | None = None,
    jobs: int | None = None,
    chunk_size: int | None = None,
    max_text_chars: int | None = None,
    progress: bool | None = None,
    summary: bool = False,
    top_n: int = 10,
    n_reasons: int = 3,
    method: str = "auto",
    progress_file: IO[str] | None = None,
) -> BatchResult:
    """Score every input row and write OUTPUT (.csv or .jsonl) plus OUTPUT.errors.csv.

    `jobs`: worker processes (None: TRIAGE_BATCH_JOBS, 0 there: all cores); 1 scores
    in this process. `progress` None shows a bar only when stderr is a terminal.
    Raises ValueError / FileNotFoundError / ModelError before writing anything when an
    input or the model cannot be used.
    """
    from app.settings import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    output = Path(output)
    output_kind(output)
    jobs = settings.batch_jobs if jobs is None else jobs
    jobs = default_jobs() if jobs <= 0 else jobs
    chunk_size = max(chunk_size or settings.batch_chunk_rows, 1)
    max_text_chars = settings.max_text_chars if max_text_chars is None else max_text_chars
    paths = [inputs] if isinstance(inputs, (str, Path)) else inputs if isinstance(inputs, (list, tuple)) else []
    for value in paths:
        if isinstance(value, (str, Path)) and Path(value).resolve() == output.resolve():
            raise ValueError(f"the output {output} is also an input")
    inbox = read_items(inputs, format=format, me=me)
    columns, extra_map = _output_columns(inbox)
    id_cols = list(inbox.id_columns)

    source: TriageModel | Path = model if model is not None else Path(model_dir or settings.model_dir)
    scorer: ChunkScorer | None = None
    pool: ProcessPoolExecutor | None = None
    if jobs == 1:
        scorer = ChunkScorer(_load(source), n_reasons, method)
    else:
        if not isinstance(source, TriageModel):
            from app.artifact import read_manifest, resolve_version_dir

            read_manifest(resolve_version_dir(source))  # a missing model fails here, clearly
        pool = _pool(jobs, source, n_reasons, method)

    result = BatchResult(output=output, jobs=jobs)
    writer = _Writer(output, columns)
    errors = _Writer(errors_path(output), ERROR_COLUMNS)
    senders: dict[str, Counter[str]] = {"sales_pitch": Counter(), "spam": Counter()}
    show = progress if progress is not None else sys.stderr.isatty()
    bar = _progress(show, progress_file or sys.stderr)
    inflight: deque[tuple[list[Record], Future[ChunkResult] | _Done]] = deque()
    max_inflight = 2 * jobs

    def fail(rec: Record, reason: str) -> None:
        result.failed += 1
        errors.write([rec.file, rec.line, rec.ids.get("id"), reason])

    def drain() -> None:
        records, pending = inflight.popleft()
        chunk = pending.result()
        probs = np.round(chunk.proba, 4).tolist()
        verdicts, reviews = chunk.verdict.tolist(), chunk.review.tolist()
        yes, no = ("true", "false") if not writer.jsonl else (True, False)
        for i, rec in enumerate(records):
            if chunk.errors and i in chunk.errors:
                fail(rec, chunk.errors[i])
                continue
            k, p, label = verdicts[i], probs[i], LABELS[verdicts[i]]
            reasons = chunk.reasons[i][:3]
            ids = rec.ids
            row = [ids.get(c) for c in id_cols]
            if extra_map:
                row += [rec.extra.get(name) for name, _ in extra_map]
            row += [label, p[k], p[0], p[1], p[2], yes if reviews[i] else no, *reasons]
            if len(reasons) < 3:
                row += [None] * (3 - len(reasons))
            writer.write(row)
            result.scored += 1
            result.verdicts[label] += 1
            if summary and label in senders and (who := _sender_label(ids)):
                senders[label][who] += 1
        bar(len(records))

    def submit(records: list[Record]) -> None:
        items = [r.item for r in records if r.item is not None]  # only records with an item are submitted
        if pool is not None:
            inflight.append((records, pool.submit(_score_in_worker, items)))
        else:
            assert scorer is not None
            inflight.append((records, _Done(scorer.score(items))))  # type: ignore[arg-type]
        while len(inflight) > max_inflight or (pool is None and inflight):
            drain()

    try:
        chunk: list[Record] = []
        for rec in inbox:
            result.read += 1
            if rec.skipped is not None:
                result.skipped[rec.skipped] += 1
                bar(1)
            elif rec.error is not None or rec.item is None:
                fail(rec, rec.error or "no item")
                bar(1)
            elif max_text_chars and len(rec.item.text) > max_text_chars:
                fail(rec, f"the text has {len(rec.item.text)} characters, more than the limit of {max_text_chars}")
                bar(1)
            else:
                chunk.append(rec)
                if len(chunk) >= chunk_size:
                    submit(chunk)
                    chunk = []
        if chunk:
            submit(chunk)
        while inflight:
            drain()
        writer.commit()
        if errors.rows:
            errors.commit()
            result.errors_file = errors.path
        else:
            errors.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    except BaseException:
        writer.abort()
        errors.abort()
        raise
    finally:
        bar(0, close=True)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    report = inbox.report
    result.encodings = dict(report.encodings)
    result.owner, result.owner_how, result.notes = report.owner, report.owner_how, list(report.notes)
    result.method = scorer.method if scorer is not None else (method if method != "auto" else "auto (per worker)")
    if summary:
        result.top_senders = {label: c.most_common(top_n) for label, c in senders.items()}
    result.seconds = time.perf_counter() - started
    return result


def _progress(show: bool, stream: IO[str]) -> Callable[..., None]:
    """A callable bar(n) that advances a tqdm bar on `stream`, or does nothing."""
    if not show:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(unit=" rows", file=stream, mininterval=0.5, smoothing=0.1, dynamic_ncols=True)

    def advance(n: int, close: bool = False) -> None:
        if n:
            bar.update(n)
        if close:
            bar.close()

    return advance


def format_counts(result: BatchResult) -> list[str]:
    """The run's counts and where they came from, as lines for a terminal."""
    skipped = ", ".join(f"{reason} {n}" for reason, n in result.skipped.most_common())
    line = f"read {result.read}, scored {result.scored}, skipped {result.n_skipped}"
    line += f" ({skipped})" if skipped else ""
    line += f", failed {result.failed}"
    if result.errors_file:
        line += f" (see {result.errors_file})"
    lines = [line]
    if result.encodings:
        lines.append("encoding: " + "; ".join(f"{name} {enc}" for name, enc in result.encodings.items()))
    if result.owner:
        lines.append(f"account owner: {result.owner} ({result.owner_how})")
    lines += [f"note: {n}" for n in result.notes]
    return lines


def format_summary(result: BatchResult) -> list[str]:
    total = sum(result.verdicts.values()) or 1
    lines = ["verdicts: " + ", ".join(f"{lab} {result.verdicts[lab]} ({result.verdicts[lab] / total:.0%})" for lab in LABELS)]
    for label, title in (("sales_pitch", "most sales pitches"), ("spam", "most spam")):
        top = result.top_senders.get(label) or []
        lines.append(f"senders with the {title}:" + ("" if top else " none"))
        lines += [f"  {n:>6}  {who}" for who, n in top]
    return lines
