"""Corpus v2: simulated LinkedIn inboxes, read through the same readers as users' exports.

`data/inboxes/src/<hand>/<inbox>.json` are the authored inboxes (`app/simulated.py`);
`build_inboxes` renders them into `data/inboxes/train/<inbox>/` and, for the hands of the
independent test set (ids starting with "t"), `data/inboxes/test/<inbox>/`, each an
export (`messages.csv`, `Invitations.csv`, `Connections.csv`) plus `labels.csv`.
`read_labelled_export` reads one such folder with `read_linkedin_export`, the reader
`triage score FOLDER` uses, and joins the labels by file and line.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.first_contacts import CORPUS_FILE, frame_items, read_corpus
from app.inbox import read_linkedin_export
from app.items import Item
from app.simulated import LABELS, iter_sources, load_source, render_export, text_sha1

INBOXES = "inboxes"
TEST_HAND_PREFIX = "t"


@dataclass(frozen=True)
class Example:
    """One labelled inbound item: the item as read from its export, its label and where it came from."""

    item: Item
    label: str
    inbox: str  # the cross-validation group: whole inboxes are held out (a user row: its conversation or sender)
    hand: str
    role: str
    file: str = ""
    line: int = 0


def inboxes_dir(data_dir: Path) -> Path:
    return Path(data_dir) / INBOXES


def build_inboxes(data_dir: Path) -> dict[str, int]:
    """Render every authored inbox into train/ or test/ (replacing what was there); counts per split.

    Each split is written into a temporary folder and renamed into place, so a reader never
    sees half a split.
    """
    root = inboxes_dir(data_dir)
    counts = {"train": 0, "test": 0}
    rendered: dict[str, dict[str, dict[str, str]]] = {"train": {}, "test": {}}
    for path in iter_sources([root / "src"]):
        source = load_source(path)
        split = "test" if source.hand.startswith(TEST_HAND_PREFIX) else "train"
        rendered[split][source.inbox] = render_export(source)
    for split, inboxes in rendered.items():
        tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", dir=root))
        try:
            for inbox, files in sorted(inboxes.items()):
                folder = tmp / inbox
                folder.mkdir(parents=True)
                for name, content in files.items():
                    (folder / name).write_text(content, encoding="utf-8", newline="")
                counts[split] += 1
            os.chmod(tmp, 0o755)
            target = root / split
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return counts


def rendered_inboxes(data_dir: Path, split: str) -> Path:
    """The rendered exports of a split (train or test), rendering the sources first if they never were."""
    root = inboxes_dir(data_dir)
    folder = root / split
    if not folder.is_dir() and (root / "src").is_dir():
        build_inboxes(data_dir)
    return folder


def read_labelled_export(folder: Path) -> list[Example]:
    """The labelled items of one rendered inbox; ValueError when a label points at nothing or at other text."""
    folder = Path(folder)
    with open(folder / "labels.csv", encoding="utf-8", newline="") as fh:
        labels = {(row["file"], int(row["line"])): row for row in csv.DictReader(fh)}
    hand = folder.name.split("-")[0]
    examples = []
    for record in read_linkedin_export(folder):
        key = (Path(record.file).name, record.line)
        row = labels.pop(key, None)
        if row is None or record.item is None:
            continue
        if row["label"] not in LABELS:
            raise ValueError(f"{folder}/labels.csv: {key}: unknown label {row['label']!r}")
        if text_sha1(record.item.text) != row["text_sha1"]:
            raise ValueError(f"{folder}/labels.csv: {key[0]} line {key[1]}: the text there is not the labelled text")
        examples.append(Example(record.item, row["label"], folder.name, hand, row["role"], key[0], key[1]))
    unread = [k for k, row in labels.items() if row["text_sha1"] != text_sha1("")]
    if unread:
        raise ValueError(f"{folder}/labels.csv: {len(unread)} labelled rows were not read back, first {unread[0]}")
    return examples


def labelled_inbox_folders(folder: Path) -> list[Path]:
    """The rendered inboxes under `folder` (the folders holding a labels.csv), in name order."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if (p / "labels.csv").is_file()) if folder.is_dir() else []


def load_inboxes(folder: Path) -> list[Example]:
    """Every labelled item of every inbox folder under `folder`, inbox by inbox in name order."""
    examples: list[Example] = []
    for sub in labelled_inbox_folders(folder):
        examples += read_labelled_export(sub)
    return examples


def load_first_contacts(data_dir: Path) -> list[Example]:
    """Corpus v1 (isolated first contacts) as examples grouped by archetype."""
    path = Path(data_dir) / CORPUS_FILE
    if not path.is_file():
        return []
    frame = read_corpus(path)
    out = []
    for row, label, archetype in zip(frame_items(frame), frame["label"], frame["archetype"].fillna("unknown"), strict=True):
        out.append(Example(Item.from_mapping(row), str(label), f"v1:{archetype}", "v1", str(archetype).split("/")[-1]))
    return out


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, 0)
    for ex in examples:
        counts[ex.label] += 1
    return counts
