"""Where input rows come from: files, unpacked exports, zips and uploads, read within limits.

- A `Source` is something that opens as bytes: a path, a zip member, a borrowed upload.
- `text_lines` decodes line by line (UTF-8 first; a line that is not UTF-8 is read as
  cp1252 and reported; UTF-16 is recognised by its byte-order mark).
- `csv_records` splits lines into CSV records with a quote-aware scanner, so a quoted field
  that never closes is reported with its line and reading resumes on the next line, never
  swallowing the rest of the file.
- `Limits` caps what an input may cost (unpacked bytes, rows, rows per conversation, lines
  per record, bytes per line); going over raises `LimitExceeded`, naming the limit.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.items import Item

SAMPLE_BYTES = 64 * 1024

# Reasons a record is skipped (counted, not scored, not an error).
OWN_MESSAGE = "own message"
DRAFT = "draft"
EMPTY_MESSAGE = "empty message"
OUTGOING_INVITATION = "outgoing invitation"
NO_NOTE = "invitation without a note"
COACH_FILE = "AI-coach file"


@dataclass(frozen=True)
class Limits:
    """What one input may cost; every figure is a setting (see app/settings.py)."""

    unpacked_bytes: int = 200 * 1024 * 1024  # TRIAGE_MAX_UNPACKED_BYTES: bytes read out of a zip
    rows: int = 2_000_000  # TRIAGE_MAX_ROWS: rows read from one run's inputs
    conversation_rows: int = 20_000  # TRIAGE_MAX_CONVERSATION_ROWS: rows of one conversation
    record_lines: int = 1_000  # TRIAGE_MAX_RECORD_LINES: physical lines one CSV record may span
    line_bytes: int = 4 * 1024 * 1024  # TRIAGE_MAX_LINE_BYTES: bytes of one physical line


class LimitExceeded(ValueError):
    """An input over one of the limits: the message names the limit and its setting."""

    def __init__(self, what: str, setting: str, limit: int):
        self.setting = setting
        self.limit = limit
        super().__init__(f"{what}: over the limit of {limit:,} ({setting}); nothing more is read")


@dataclass(slots=True)
class Record:
    """One input row: an item to score, or why it was skipped, or why it failed."""

    file: str
    line: int
    ids: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)
    item: Item | None = None
    skipped: str | None = None
    error: str | None = None


@dataclass
class ReadReport:
    """What reading learnt: each file's encoding, the account owner, notes for the user."""

    encodings: dict[str, str] = field(default_factory=dict)
    fallback_lines: dict[str, list[int]] = field(default_factory=dict)  # lines read as cp1252, per file
    owner: str | None = None
    owner_how: str | None = None
    notes: list[str] = field(default_factory=list)
    unpacked_bytes: int = 0
    rows: int = 0


@dataclass(frozen=True)
class Source:
    name: str
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]


def path_source(path: Path, name: str | None = None) -> Source:
    return Source(name or str(path), lambda: open(path, "rb"))


def borrowed_source(obj: IO[bytes], name: str | None = None) -> Source:
    """A binary file-like object, re-read from where it stood; never closed here."""
    if not (hasattr(obj, "seekable") and obj.seekable()):
        obj = io.BytesIO(obj.read())
    start = obj.tell()
    raw_name = getattr(obj, "name", None)
    label = name or (Path(raw_name).name if isinstance(raw_name, str) and raw_name else "upload")

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        obj.seek(start)
        yield obj

    return Source(label, opener)


def as_source(value: str | Path | IO[bytes] | Source) -> Source:
    if isinstance(value, Source):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        return path_source(path)
    if isinstance(value, io.TextIOBase):
        raise TypeError("open the file in binary mode ('rb'): the encoding is detected from its bytes")
    if hasattr(value, "read"):
        return borrowed_source(value)
    raise TypeError(f"expected a path or a binary file object, got {type(value).__name__}")


def head(source: Source, size: int = SAMPLE_BYTES) -> bytes:
    with source.open() as fh:
        return fh.read(size)


class _Budget:
    """Bytes read out of zips in one run, against Limits.unpacked_bytes."""

    def __init__(self, limits: Limits, report: ReadReport):
        self.limits = limits
        self.report = report

    def charge(self, n: int, name: str) -> None:
        self.report.unpacked_bytes += n
        if self.report.unpacked_bytes > self.limits.unpacked_bytes:
            raise LimitExceeded(f"{name}: unpacked data", "TRIAGE_MAX_UNPACKED_BYTES", self.limits.unpacked_bytes)


class _CountedReader(io.RawIOBase):
    """A zip member's stream that charges every byte it hands out to the run's budget."""

    def __init__(self, raw: IO[bytes], budget: _Budget, name: str):
        self.raw, self.budget, self.name = raw, budget, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.budget.charge(len(data), self.name)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def zip_member_source(archive: Any, info: Any, zip_name: str, limits: Limits, report: ReadReport) -> Source:
    """A member of an open zip archive whose unpacked bytes count against the run's limit."""
    budget = _Budget(limits, report)
    name = f"{zip_name}:{info.filename}"

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        if info.file_size > limits.unpacked_bytes:  # the declared size alone is over: refuse before unpacking
            raise LimitExceeded(f"{name}: unpacked size", "TRIAGE_MAX_UNPACKED_BYTES", limits.unpacked_bytes)
        with archive.open(info) as raw:
            yield io.BufferedReader(_CountedReader(raw, budget, name), buffer_size=1 << 16)

    return Source(name, opener)


# --------------------------------------------------------------------------------------
# Decoding, line by line
# --------------------------------------------------------------------------------------

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _read_line(fh: IO[bytes], max_bytes: int) -> tuple[bytes, bool]:
    """(line, too_long): a physical line up to max_bytes; a longer one is consumed and dropped."""
    line = fh.readline(max_bytes + 1)
    if len(line) <= max_bytes or line.endswith(b"\n"):
        return line, False
    while line and not line.endswith(b"\n"):
        line = fh.readline(1 << 20)
    return b"\n", True


def text_lines(source: Source, report: ReadReport | None, limits: Limits) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per physical line; text is None for a line over Limits.line_bytes."""
    fallback: list[int] = []
    with source.open() as fh:
        start = fh.read(4)
        if start.startswith(_UTF16_BOMS):
            if report is not None:
                report.encodings[source.name] = "utf-16"
            text = io.TextIOWrapper(io.BufferedReader(_Prefixed(start, fh)), encoding="utf-16", errors="replace", newline="")
            for n, line in enumerate(text, 1):
                yield n, line
            return
        bom = start.startswith(codecs.BOM_UTF8)
        stream = io.BufferedReader(_Prefixed(start[3:] if bom else start, fh))
        n = 0
        while True:
            raw, too_long = _read_line(stream, limits.line_bytes)
            if not raw:
                break
            n += 1
            if too_long:
                yield n, None
                continue
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError:
                fallback.append(n)
                yield n, raw.decode("cp1252", errors="replace")
    if report is not None:
        label = "utf-8 with BOM" if bom else "utf-8"
        if fallback:
            report.fallback_lines[source.name] = fallback
            label += f" ({len(fallback)} line{'s' if len(fallback) > 1 else ''} read as cp1252: {_lines(fallback)})"
        report.encodings[source.name] = label


def _lines(numbers: list[int], shown: int = 5) -> str:
    text = ", ".join(map(str, numbers[:shown]))
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]):
        self.prefix, self.rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --------------------------------------------------------------------------------------
# CSV records
# --------------------------------------------------------------------------------------

_QUOTE_OR_COMMA = re.compile(r'[",]')


def _inside_quotes(line: str, quoted: bool) -> bool:
    """Whether a record is still inside a quoted field at the end of this line (RFC 4180, read leniently)."""
    if '"' not in line:
        return quoted
    field_start = 0
    after_quote = False
    skip = -1
    for m in _QUOTE_OR_COMMA.finditer(line):
        p = m.start()
        if p == skip:
            continue
        if m.group() == ",":
            if not quoted:
                field_start, after_quote = p + 1, False
            continue
        if quoted:
            if line[p + 1 : p + 2] == '"':
                skip = p + 1  # an escaped quote
            else:
                quoted, after_quote = False, True
        elif p == field_start and not after_quote:
            quoted = True
    return quoted


class _RecordFeed:
    """Hands a csv.reader one whole record at a time."""

    record: str | None = None

    def __iter__(self) -> _RecordFeed:
        return self

    def __next__(self) -> str:
        record, self.record = self.record, None
        if record is None:
            raise StopIteration
        return record


def csv_records(source: Source, report: ReadReport | None, limits: Limits) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, cells, None) per non-blank record; (line, None, reason) for one that cannot be read.

    A record whose quoted field does not close within Limits.record_lines physical lines (or
    before the end of the file) is reported on its first line, and reading resumes on the
    line after it: every line is either in a record or named in an error.
    """
    lines = text_lines(source, report, limits)
    feed = _RecordFeed()
    parser = csv.reader(feed)  # one reader for the whole file: a reader per record costs more than the parse
    pending: deque[tuple[int, str | None]] = deque()
    buffer: list[tuple[int, str]] = []
    quoted = False
    while True:
        if pending:
            n, text = pending.popleft()
        else:
            got = next(lines, None)
            if got is None:
                if not buffer:
                    return
                first = buffer[0][0]
                yield first, None, f"a quoted field opened on line {first} never closes; the row is skipped"
                pending.extend(buffer[1:])
                buffer, quoted = [], False
                continue
            n, text = got
        if text is None:
            if buffer:  # an overlong line inside an open record: the record cannot be read
                pending.appendleft((n, text))
                pending.extendleft(reversed(buffer[1:]))
                first = buffer[0][0]
                buffer, quoted = [], False
                yield first, None, f"the record starting on line {first} holds a line over {limits.line_bytes:,} bytes"
                continue
            yield n, None, f"line {n} is longer than {limits.line_bytes:,} bytes (TRIAGE_MAX_LINE_BYTES)"
            continue
        buffer.append((n, text))
        quoted = _inside_quotes(text, quoted)
        if quoted:
            if len(buffer) > limits.record_lines:
                first = buffer[0][0]
                yield (
                    first,
                    None,
                    (
                        f"a quoted field opened on line {first} does not close within {limits.record_lines:,} lines "
                        "(TRIAGE_MAX_RECORD_LINES); the row is skipped"
                    ),
                )
                pending.extendleft(reversed(buffer[1:]))
                buffer, quoted = [], False
            continue
        record = "".join(t for _, t in buffer)
        first = buffer[0][0]
        buffer = []
        if not record.strip():
            continue
        feed.record = record
        try:
            cells = next(parser, [])
        except csv.Error:
            parser = csv.reader(feed)
            try:  # as a reader of its own reads it, for the same error and the same first row
                cells = next(csv.reader(io.StringIO(record)), [])
            except csv.Error as exc:
                yield first, None, f"cannot parse the CSV record: {exc}"
                continue
        if any(c.strip() for c in cells):
            yield first, cells, None


def norm_header(cells: list[str]) -> list[str]:
    return [c.strip().lower() for c in cells]


def sample_rows(source: Source, max_rows: int = 20) -> list[list[str]]:
    """The first non-blank CSV rows of a source's head, lower-cased and trimmed (for format detection)."""
    data = head(source)
    if data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = codecs.getincrementaldecoder("utf-8-sig")().decode(data)
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    lines = text.splitlines(keepends=True)
    if len(data) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    rows: list[list[str]] = []
    with contextlib.suppress(csv.Error):
        for row in csv.reader(lines):
            if any(c.strip() for c in row):
                rows.append(norm_header(row))
            if len(rows) >= max_rows:
                break
    return rows


def sample_text(source: Source) -> str:
    """The head of a source as text, whatever its encoding."""
    data = head(source)
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", errors="replace")
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data)
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
