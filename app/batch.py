"""Batch scoring: stream an inbox through the scoring core in chunks, in parallel, to CSV or JSONL.

`score_file` reads records with `app.inbox.read_items`, sends chunks of items to N worker
processes (each loads the model and the lists once) where `Scorer.score` turns them into
output cells (`app/output.py`), and writes one row per scored item in input order, plus
OUTPUT.errors.csv for rows that failed. Memory stays flat: only a few chunks are in flight.
"""

from __future__ import annotations

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

from app.inbox import Inbox, Record, read_items
from app.items import Item, is_anonymous
from app.model import LABELS
from app.output import ERROR_COLUMNS, SCORE_COLUMNS, RowWriter, errors_path, output_kind, row_writer, score_cells
from app.scoring import Scorer


def load_scorer(model_dir: str | Path | None = None, lists_file: str | Path | None = None) -> Scorer:
    """The scorer for a model store and a lists file (defaults from settings)."""
    from app.artifact import load_model
    from app.lists import load_lists
    from app.settings import get_settings

    settings = get_settings()
    model = load_model(Path(model_dir) if model_dir else settings.model_dir)
    lists = load_lists(Path(lists_file) if lists_file else settings.lists_file)
    return Scorer(model, lists)


def score_chunk(scorer: Scorer, items: Sequence[Item], n_reasons: int = 3) -> list[list[Any] | str]:
    """SCORE_COLUMNS cells per item, in order; a string (the reason) for an item that could not be scored."""
    try:
        return [score_cells(v, it.text) for v, it in zip(scorer.score(items, n_reasons), items, strict=True)]
    except Exception:
        if len(items) == 1:
            raise
    out: list[list[Any] | str] = []
    for item in items:  # find the row that broke the chunk; the others still get their verdict
        try:
            out.append(score_cells(scorer.score([item], n_reasons)[0], item.text))
        except Exception as exc:
            out.append(f"could not score: {type(exc).__name__}: {exc}")
    return out


# --------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(scorer: Scorer | None, model_dir: str | None, lists_file: str | None, n_reasons: int) -> None:
    _WORKER["scorer"] = scorer if scorer is not None else load_scorer(model_dir, lists_file)
    _WORKER["n_reasons"] = n_reasons


def _score_in_worker(items: list[Item]) -> list[list[Any] | str]:
    return score_chunk(_WORKER["scorer"], items, _WORKER["n_reasons"])


def _ready() -> bool:
    return True


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _pool(jobs: int, initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """Worker processes that load the scorer as they start.

    Fork (Linux, and only while this process has a single thread) starts them at once with
    the modules already imported; otherwise forkserver (or spawn), which is safe in a
    threaded caller such as the API server.
    """
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        name = "fork"
    else:
        name = "forkserver" if "forkserver" in methods else "spawn"
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(name), initializer=_init_worker, initargs=initargs)
    pool.submit(_ready)  # start the workers now: they load the model while this process reads
    return pool


class _Done:
    """A finished result that looks like a Future."""

    def __init__(self, value: list[list[Any] | str]):
        self.value = value

    def result(self) -> list[list[Any] | str]:
        return self.value


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
    review: int = 0
    first_sent_at: str = ""
    last_sent_at: str = ""
    top_reasons: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sponsored: Counter[str] = field(default_factory=Counter)
    top_senders: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1

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


def output_columns(inbox: Inbox, score_columns: Sequence[str] = SCORE_COLUMNS) -> tuple[list[str], list[tuple[str, str]]]:
    """Every output column (id columns, carried columns, score columns) and the carried-column map."""
    extra = carried_columns(inbox, score_columns)
    return list(inbox.id_columns) + [out for _, out in extra] + list(score_columns), extra


def row_head(rec: Record, id_cols: Sequence[str], extra: Sequence[tuple[str, str]]) -> list[Any]:
    return [rec.ids.get(c) for c in id_cols] + [rec.extra.get(name) for name, _ in extra]


def _sender_label(ids: dict[str, Any]) -> str | None:
    name, url = ids.get("sender_name"), ids.get("sender_profile_url")
    if name and url:
        return f"{name} <{url}>"
    return name or url


def too_long(rec: Record, max_text_chars: int | None) -> str | None:
    """The reason a record's text is over the limit, or None."""
    if rec.item is not None and max_text_chars and len(rec.item.text) > max_text_chars:
        return f"text: {len(rec.item.text):,} characters, the limit is {max_text_chars:,}"
    return None


def score_file(
    inputs: str | Path | IO[bytes] | Iterable[str | Path | IO[bytes]],
    output: str | Path,
    *,
    format: str = "auto",
    me: str | None = None,
    scorer: Scorer | None = None,
    model_dir: str | Path | None = None,
    lists_file: str | Path | None = None,
    jobs: int | None = None,
    chunk_size: int | None = None,
    max_text_chars: int | None = None,
    progress: bool | None = None,
    summary: bool = False,
    top_n: int = 10,
    n_reasons: int = 3,
    progress_file: IO[str] | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> BatchResult:
    """Score every input row and write OUTPUT (.csv or .jsonl) plus OUTPUT.errors.csv.

    `jobs`: worker processes (None: TRIAGE_BATCH_JOBS, 0 there: all cores); 1 scores in this
    process. `engine="dask"` scores the chunks on a Dask cluster instead (`app/dask_engine.py`):
    the user's at `scheduler`, or a local one with `jobs` workers. `progress` None shows a bar
    only when stderr is a terminal. Raises ValueError / FileNotFoundError / ModelError before
    writing anything when an input or the model cannot be used.
    """
    from app.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    if output_kind(output) == "parquet":
        Path(output).mkdir(parents=True, exist_ok=True)  # a folder of parts: it exists from now on, so it reads as one
    output = Path(output)
    jobs = settings.batch_jobs if jobs is None else jobs
    jobs = default_jobs() if jobs <= 0 else jobs
    chunk_size = max(chunk_size or settings.batch_chunk_rows, 1)
    max_text_chars = settings.max_text_chars if max_text_chars is None else max_text_chars
    paths = [inputs] if isinstance(inputs, (str, Path)) else inputs if isinstance(inputs, (list, tuple)) else []
    for value in paths:
        if isinstance(value, (str, Path)) and Path(value).resolve() == output.resolve():
            raise ValueError(f"the output {output} is also an input")
    inbox = read_items(inputs, format=format, me=me, limits=settings.limits())
    columns, extra_map = output_columns(inbox)
    id_cols = list(inbox.id_columns)

    pool: Any = None
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be local or dask, got {engine!r}")
    if engine == "dask":
        from app.dask_engine import DaskPool

        expected = (scorer or load_scorer(model_dir, lists_file)).version
        store = Path(model_dir) if model_dir else settings.model_dir
        lists = Path(lists_file) if lists_file else settings.lists_file
        pool = DaskPool(scheduler, jobs, store, lists, n_reasons, expected)
        scorer = None
    elif jobs == 1:
        scorer = scorer or load_scorer(model_dir, lists_file)
    else:
        if scorer is None:
            load_scorer(model_dir, lists_file)  # a missing model or a bad lists file fails here, clearly
        initargs = (scorer, str(model_dir) if model_dir else None, str(lists_file) if lists_file else None, n_reasons)
        pool = _pool(jobs, initargs)

    result = BatchResult(output=output, jobs=pool.workers if engine == "dask" else jobs)
    writer = row_writer(output, columns)
    errors = RowWriter(errors_path(output), ERROR_COLUMNS)
    senders: dict[str, Counter[str]] = {"sales_pitch": Counter(), "spam": Counter()}
    show = progress if progress is not None else sys.stderr.isatty()
    bar = _progress(show, progress_file or sys.stderr)
    inflight: deque[tuple[list[Record], Future[list[list[Any] | str]] | _Done]] = deque()
    max_inflight = 2 * (pool.workers if engine == "dask" else jobs)
    verdict_at = len(columns) - len(SCORE_COLUMNS)
    review_at = verdict_at + SCORE_COLUMNS.index("needs_review")
    reason_at = verdict_at + SCORE_COLUMNS.index("reason_1")
    reasons: dict[str, Counter[str]] = {lab: Counter() for lab in LABELS}

    def fail(rec: Record, reason: str) -> None:
        result.failed += 1
        errors.write([rec.file, rec.line, rec.ids.get("id"), f"line {rec.line}: {reason}"])

    def drain() -> None:
        records, pending = inflight.popleft()
        for rec, cells in zip(records, pending.result(), strict=True):
            if isinstance(cells, str):
                fail(rec, cells)
                continue
            row = row_head(rec, id_cols, extra_map) + cells
            writer.write(row)
            label = row[verdict_at]
            result.scored += 1
            result.verdicts[label] += 1
            result.review += bool(row[review_at])
            if summary:
                when = str(rec.ids.get("sent_at") or "")
                if when:
                    result.first_sent_at = min(result.first_sent_at or when, when)
                    result.last_sent_at = max(result.last_sent_at, when)
                for cell in row[reason_at : reason_at + 3]:
                    if cell:
                        reasons[label][str(cell).rsplit(" (", 1)[0]] += 1
            if summary and label in senders and (who := _sender_label(rec.ids)):
                if is_anonymous(rec.ids.get("sender_name")):
                    result.sponsored[label] += 1
                else:
                    senders[label][who] += 1
        bar(len(records))

    def submit(records: list[Record]) -> None:
        items = [r.item for r in records if r.item is not None]
        if pool is not None:
            inflight.append((records, pool.submit(_score_in_worker, items)))
        else:
            assert scorer is not None
            inflight.append((records, _Done(score_chunk(scorer, items, n_reasons))))
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
            elif reason := too_long(rec, max_text_chars):
                fail(rec, reason)
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
    if summary:
        result.top_senders = {label: c.most_common(top_n) for label, c in senders.items()}
        result.top_reasons = {label: c.most_common(5) for label, c in reasons.items()}
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
    lines.append(f"sent to review: {result.review} ({result.review / total:.0%})")
    if result.first_sent_at:
        lines.append(f"dates: {result.first_sent_at[:10]} to {result.last_sent_at[:10]}")
    for label in LABELS:
        top = result.top_reasons.get(label) or []
        if top:
            lines.append(f"top reasons for {label}: " + "; ".join(f"{why} ({n})" for why, n in top))
    for label, title in (("sales_pitch", "most sales pitches"), ("spam", "most spam")):
        top = result.top_senders.get(label) or []
        lines.append(f"senders with the {title}:" + ("" if top else " none"))
        lines += [f"  {n:>6}  {who}" for who, n in top]
    if result.sponsored:
        lines.append(
            "sponsored mail ('LinkedIn Member', not ranked above): "
            + ", ".join(f"{lab} {n}" for lab, n in result.sponsored.most_common())
        )
    return lines


def rollup_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".conversations.csv")


def write_rollup(output: Path, model_dir: str | Path | None = None) -> Path:
    """One verdict per conversation (or sender) of a scored file, beside it as OUTPUT.conversations.csv."""
    import csv
    import json

    from app.artifact import read_thresholds
    from app.rollup import ROLLUP_COLUMNS, roll_up
    from app.settings import get_settings

    output = Path(output)
    with open(output, encoding="utf-8", newline="") as fh:
        if output_kind(output) == "jsonl":
            rows = [json.loads(line) for line in fh if line.strip()]
        else:
            rows = list(csv.DictReader(fh))
    thresholds = read_thresholds(Path(model_dir) if model_dir else get_settings().model_dir)
    path = rollup_path(output)
    writer = RowWriter(path, ROLLUP_COLUMNS)
    try:
        for conversation in roll_up(rows, thresholds):
            writer.write(conversation.cells())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return path
