"""Shared fixtures: tiny simulated inboxes, a tiny first-contact corpus, a model trained on them, the shipped model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.artifact import load_model
from app.corpus import build_inboxes, inboxes_dir, load_first_contacts, load_inboxes
from app.settings import PROJECT_ROOT
from app.train import train_model

FIXTURES = Path(__file__).parent / "fixtures"
SIMULATED = FIXTURES / "simulated"


def pytest_configure(config: pytest.Config) -> None:
    """Once per run, before pytest-xdist starts its workers: render the corpus's inboxes (a fresh clone has none,
    and two notebooks read them at once) and score one text with the shipped model, so numba's on-disk cache of
    the scoring loops is filled once instead of by every worker and server at once.
    Training commands run their folds in this process (TRIAGE_TRAIN_JOBS=1): worker processes cost seconds to
    start and the suite already runs one worker per core; the killed-retrain test asks for workers itself."""
    os.environ.setdefault("TRIAGE_TRAIN_JOBS", "1")
    if hasattr(config, "workerinput"):  # a worker: the controller has done it
        return
    from app.corpus import rendered_inboxes
    from app.items import Item

    for split in ("train", "test"):
        rendered_inboxes(PROJECT_ROOT / "data", split)
    load_model(PROJECT_ROOT / "model").verdicts([Item(text="Thanks for the intro, talk soon!")])


def make_data_dir(root: Path) -> Path:
    """A data folder: the fixture inboxes under inboxes/src (x* train, tx* test), rendered, plus the tiny corpus.csv."""
    data = root / "data"
    for path in SIMULATED.glob("*.json"):
        hand = path.stem.split("-")[0]
        target = data / "inboxes" / "src" / hand
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
    shutil.copy(FIXTURES / "tiny_corpus.csv", data / "corpus.csv")
    build_inboxes(data)
    return data


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def tiny_data_dir(tmp_path):
    """A fresh, writable data folder for tests that change it (retraining)."""
    return make_data_dir(tmp_path)


@pytest.fixture(scope="session")
def tiny_examples(session_data_dir):
    return load_inboxes(inboxes_dir(session_data_dir) / "train")


@pytest.fixture(scope="session")
def tiny_first_contacts(session_data_dir):
    return load_first_contacts(session_data_dir)


def train_tiny(examples, first_contacts, n_jobs: int = 1, **params):
    """A model trained on the fixture inboxes plus the tiny first-contact corpus (2 grouped folds, seconds)."""
    params = {"word_min_df": 1, "char_min_df": 1, "thread_min_df": 1, **params}
    return train_model(examples, params, first_contacts, folds=2, version="tiny-test", n_jobs=n_jobs).model


@pytest.fixture(scope="session")
def tiny_model(tiny_examples, tiny_first_contacts):
    return train_tiny(tiny_examples, tiny_first_contacts)


@pytest.fixture(scope="session")
def tiny_model_plain_norm(tiny_examples, tiny_first_contacts):
    """The tiny model with the word blocks' plain l2 norm (unknown words left out), as shipped before round 14."""
    return train_tiny(tiny_examples, tiny_first_contacts, unseen_words_in_norm=False)


@pytest.fixture(scope="session")
def shipped_model():
    """The committed model in model/ (loaded and verified like the service does)."""
    return load_model(PROJECT_ROOT / "model")
