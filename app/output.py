"""The one definition of a scored row: its columns, its cells, and safe CSV and JSONL writing.

`triage score`, the CSV upload endpoint, the web page's export table and the Dask engine
all write rows through `score_cells` and `RowWriter`, so their outputs are identical.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from app.model import LABELS, Reason, Verdict

N_REASONS = 3
SNIPPET_CHARS = 200
VERDICT_COLUMNS = ("verdict", "confidence", "p_genuine", "p_sales_pitch", "p_spam", "needs_review")  # rows and rollups
SCORE_COLUMNS = (
    *VERDICT_COLUMNS,
    "source",
    "summary",
    "reason_1",
    "reason_2",
    "reason_3",
    "snippet",
    "model_version",
    "text",  # the whole text, so that an output with a `label` column added can be fed to `triage retrain --add`
)
STATUS_COLUMNS = ("status", "error")  # uploads list every row: scored, skipped (why) or error (why)
ERROR_COLUMNS = ("file", "line", "id", "reason")
# A cell starting with one of these is a formula to a spreadsheet (CSV injection): it gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def reason_cell(reason: Reason) -> str:
    return f"{reason.description} ({reason.contribution:+.2f})"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def score_cells(verdict: Verdict, text: str) -> list[Any]:
    """The SCORE_COLUMNS cells of one verdict, in order (booleans as true/false)."""
    reasons: list[str | None] = [reason_cell(r) for r in verdict.reasons[:N_REASONS]]
    reasons += [None] * (N_REASONS - len(reasons))
    return [
        verdict.verdict,
        round(verdict.confidence, 4),
        *(round(verdict.scores[lab], 4) for lab in LABELS),
        verdict.needs_review,
        verdict.source,
        verdict.summary,
        *reasons,
        snippet(text),
        verdict.model_version,
        text,
    ]


def csv_safe(value: Any) -> Any:
    """A cell as a spreadsheet may open it safely: text that would start a formula gets a leading quote."""
    kind = type(value)
    if kind is str:
        return "'" + value if value.startswith(_FORMULA_START) else value
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):  # a str subclass
        return "'" + value
    return value


def csv_cells(values: Iterable[Any]) -> list[Any]:
    """A row's cells as written to CSV: `csv_safe`, None as empty (plain text, the commonest cell, inline)."""
    return [v if type(v) is str and not v.startswith(_FORMULA_START) else "" if v is None else csv_safe(v) for v in values]


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (RFC 4180: CRLF line ends, so a cell holding a bare CR is quoted too)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(csv_cells(values))
    return buf.getvalue()


def output_kind(path: Path | str) -> str:
    """'csv', 'jsonl', or 'parquet' for a folder (a path ending in '/', or an existing folder)."""
    if str(path).endswith(("/", "\\")) or Path(path).is_dir():
        return "parquet"
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"the output must end in .csv or .jsonl, or be a folder (DIR/) for Parquet, got {Path(path).name!r}")


class RowWriter:
    """Rows to a .csv or .jsonl file, written under a temporary name and renamed into place at the end."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.jsonl = output_kind(self.path) == "jsonl"
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.fh: IO[str] | None = None
        self.csv: Any = None
        self.rows = 0

    def _open(self) -> IO[str]:
        if self.fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.tmp, "w", encoding="utf-8", newline="")
            self.csv = csv.writer(self.fh, lineterminator="\r\n")  # as csv_line writes one record
            if not self.jsonl:
                self.fh.write(csv_line(self.columns))
        return self.fh

    def write(self, values: Sequence[Any]) -> None:
        fh = self._open()
        self.rows += 1
        if self.jsonl:
            fh.write(json.dumps(dict(zip(self.columns, values, strict=True)), ensure_ascii=False) + "\n")
        else:
            self.csv.writerow(csv_cells(values))

    def commit(self) -> None:
        self._open().close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


class ParquetWriter(RowWriter):
    """Rows to a folder of Parquet parts (part-00000.parquet, ...), written in a temporary folder and renamed."""

    PART_ROWS = 100_000

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.jsonl = True  # booleans and numbers stay typed, as in JSONL
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.rows = 0
        self.buffer: list[Sequence[Any]] = []
        self.parts = 0

    def write(self, values: Sequence[Any]) -> None:
        self.buffer.append(values)
        self.rows += 1
        if len(self.buffer) >= self.PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pandas as pd

        self.tmp.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(self.buffer, columns=self.columns)
        frame.to_parquet(self.tmp / f"part-{self.parts:05d}.parquet", index=False)
        self.parts += 1
        self.buffer = []

    def commit(self) -> None:
        if self.buffer or not self.parts:
            self._flush()
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def row_writer(path: Path, columns: Sequence[str]) -> RowWriter:
    """The writer for an output path: CSV, JSONL, or a folder of Parquet parts."""
    return ParquetWriter(path, columns) if output_kind(path) == "parquet" else RowWriter(path, columns)


def errors_path(output: Path) -> Path:
    output = Path(output)
    if output_kind(output) == "parquet":
        return output.with_name(output.name.rstrip("/") + ".errors.csv")
    return output.with_name(output.name + ".errors.csv")
