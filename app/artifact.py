"""Versioned model artifacts: save, verify and load.

Layout of a model store (the `model/` folder, `TRIAGE_MODEL_DIR`):

    CURRENT                     one line: the current version's folder name
    versions/<version>/model.skops
    versions/<version>/manifest.json

A version folder is written under a temporary name and renamed into place, and
CURRENT is replaced atomically (write, then rename), so a crash at any moment leaves
a valid current model. The model is stored with skops, not pickle: loading runs no code
from the file, and refuses any type that is not scikit-learn's, NumPy's or one of this
project's own feature steps. It also checks the file's sha256 against the manifest and
refuses a scikit-learn version other than the one the model was trained with.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio

from app.features import FEATURES_VERSION
from app.model import Thresholds, TriageModel

HISTORY_FILE = "history.jsonl"
MODEL_FILE = "model.skops"
# The only types a model file may hold beyond those skops trusts by default: our own feature steps.
TRUSTED_TYPES = frozenset(
    {
        "app.features.ItemPreparer",
        "app.signals.SignalTransformer",
        "app.context.ContextTransformer",
        "app.text.norm_text",
        "app.text.thread_text",
    }
)
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "CURRENT"
VERSIONS_DIR = "versions"


class ModelError(Exception):
    """A model store or artifact that cannot be used; the message says why and what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def runtime_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "scikit_learn": sklearn.__version__, "numpy": np.__version__}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def resolve_version_dir(model_dir: Path) -> Path:
    """The folder holding manifest.json: `model_dir` itself, or the version CURRENT names."""
    model_dir = Path(model_dir)
    if (model_dir / MANIFEST_FILE).is_file():
        return model_dir
    pointer = model_dir / POINTER_FILE
    if not pointer.is_file():
        raise ModelError(
            f"no model in {model_dir}: neither {MANIFEST_FILE} nor {POINTER_FILE} found; train one with `triage train`"
        )
    name = pointer.read_text(encoding="utf-8").strip()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"{pointer} names an invalid version {name!r}")
    version_dir = model_dir / VERSIONS_DIR / name
    if not (version_dir / MANIFEST_FILE).is_file():
        raise ModelError(f"{pointer} names version {name!r}, but {version_dir / MANIFEST_FILE} does not exist")
    return version_dir


def read_manifest(version_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((version_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {version_dir / MANIFEST_FILE}: {exc}") from None
    if not isinstance(manifest, dict) or "artifact_sha256" not in manifest:
        raise ModelError(f"{version_dir / MANIFEST_FILE} has no artifact_sha256: refusing to load")
    return manifest


def load_model(model_dir: Path) -> TriageModel:
    """Load and verify a model (store root or version folder). Raises ModelError with the reason."""
    version_dir = resolve_version_dir(model_dir)
    manifest = read_manifest(version_dir)
    artifact = version_dir / MODEL_FILE
    if not artifact.is_file():
        raise ModelError(f"{artifact} is missing")
    actual = sha256_file(artifact)
    if actual != manifest["artifact_sha256"]:
        raise ModelError(
            f"{artifact} does not match its manifest (sha256 {actual[:12]}... != "
            f"{str(manifest['artifact_sha256'])[:12]}...): refusing to load it"
        )
    trained_with = str(manifest.get("versions", {}).get("scikit_learn", ""))
    if _minor(trained_with) != _minor(sklearn.__version__):
        raise ModelError(
            f"model {manifest.get('version')} was trained with scikit-learn {trained_with}, "
            f"this is {sklearn.__version__}: retrain with `triage train` (or install "
            f"scikit-learn=={trained_with})"
        )
    if manifest.get("features_version") != FEATURES_VERSION:
        raise ModelError(
            f"model {manifest.get('version')} was trained with features version "
            f"{manifest.get('features_version')}, this code computes version {FEATURES_VERSION}: "
            "retrain with `triage train`"
        )
    try:
        untrusted = set(sio.get_untrusted_types(file=artifact))
    except Exception as exc:  # a corrupt or foreign file: skops raises many kinds
        raise ModelError(f"{artifact} is not a readable model file: {exc}") from None
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ModelError(f"{artifact} holds types this project does not trust: {', '.join(refused[:5])}: refusing to load it")
    try:
        pipeline = sio.load(artifact, trusted=sorted(untrusted))
        thresholds = Thresholds(**manifest.get("thresholds", {}))
        return TriageModel(pipeline, thresholds, manifest)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{version_dir}: the model does not load: {exc}") from None


def save_model(model: TriageModel, store: Path, manifest: dict[str, Any], make_current: bool = True) -> Path:
    """Write a new version folder into a store (atomically) and, by default, point CURRENT at it."""
    store = Path(store)
    versions = store / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    version = manifest["version"]
    final = versions / version
    if final.exists():
        raise ModelError(f"version {version} already exists in {versions}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=versions))
    try:
        sio.dump(model.pipeline, tmp / MODEL_FILE, compression=zipfile.ZIP_DEFLATED)
        manifest = dict(manifest, artifact_sha256=sha256_file(tmp / MODEL_FILE), artifact_file=MODEL_FILE)
        write_atomic(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _checkpoint("before-version-rename")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        set_current(store, version)
    return final


def set_current(store: Path, version: str) -> None:
    """Point CURRENT at a version, atomically; the version must load and verify first."""
    load_model(Path(store) / VERSIONS_DIR / version)
    write_atomic(Path(store) / POINTER_FILE, version + "\n", checkpoint="before-pointer-rename")


def _checkpoint(name: str) -> None:
    """Crash here if TRIAGE_CRASH_AT names this point: lets tests kill a promotion mid-way."""
    if os.environ.get("TRIAGE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_atomic(path: Path, text: str, checkpoint: str | None = None) -> None:
    """Write a text file so that readers see the old content or the new, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if checkpoint:
            _checkpoint(checkpoint)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_version(store: Path) -> str | None:
    pointer = Path(store) / POINTER_FILE
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def list_versions(store: Path) -> list[dict[str, Any]]:
    """Manifests of every version in a store, oldest first, with `current` set on one."""
    current = current_version(store)
    out = []
    versions = Path(store) / VERSIONS_DIR
    for folder in sorted(versions.iterdir() if versions.is_dir() else []):
        if folder.name.startswith(".") or not (folder / MANIFEST_FILE).is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except ModelError:
            continue
        manifest["current"] = folder.name == current
        out.append(manifest)
    return sorted(out, key=lambda m: str(m.get("created_at", "")))


def record_history(store: Path, action: str, version: str, previous: str | None = None, reason: str = "") -> None:
    """Append one line to the store's history (promotions, rejections, rollbacks)."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": previous,
        "reason": reason,
    }
    with open(Path(store) / HISTORY_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def read_history(store: Path) -> list[dict[str, Any]]:
    path = Path(store) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rollback(store: Path, version: str | None = None) -> tuple[str | None, str]:
    """Make `version` (default: the one current before the latest promotion) current again.

    Returns (previous current, new current). Raises ModelError when there is nothing to go back
    to or the target does not verify.
    """
    store = Path(store)
    current = current_version(store)
    if version is None:
        for entry in reversed(read_history(store)):
            if entry["action"] in ("promote", "rollback") and entry["version"] == current and entry.get("previous"):
                version = entry["previous"]
                break
        else:
            raise ModelError(f"no earlier version to roll back to from {current}; name one (see `triage model list`)")
    if not (store / VERSIONS_DIR / version / MANIFEST_FILE).is_file():
        raise ModelError(f"no version {version!r} in {store / VERSIONS_DIR}")
    set_current(store, version)
    record_history(store, "rollback", version, previous=current, reason=f"rolled back from {current}")
    return current, version
