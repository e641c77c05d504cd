"""Shared fixtures: a tiny corpus, a model trained on it, and the shipped model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.artifact import load_model
from app.corpus import read_corpus
from app.settings import PROJECT_ROOT
from app.train import train_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_frame():
    return read_corpus(FIXTURES / "tiny_corpus.csv")


@pytest.fixture(scope="session")
def tiny_model(tiny_frame):
    """A model trained on the tiny fixture corpus (3 grouped folds, a second or two)."""
    return train_model(tiny_frame, folds=3, version="tiny-test").model


@pytest.fixture()
def tiny_data_dir(tmp_path):
    """A data folder holding the tiny corpus as corpus.csv and a tiny test.csv."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "tiny_corpus.csv", data / "corpus.csv")
    shutil.copy(FIXTURES / "tiny_test.csv", data / "test.csv")
    return data


@pytest.fixture(scope="session")
def shipped_model():
    """The committed model in model/ (loaded and verified like the service does)."""
    return load_model(PROJECT_ROOT / "model")
