"""Versioned model artifacts: save, verify and load, trusting nothing unchecked.

Layout of a model store (the `model/` folder, `TRIAGE_MODEL_DIR`):

    CURRENT                       one line: "<version> <sha256 of its manifest.json>"
    history.jsonl                 promotions, rejections and rollbacks
    versions/<version>/model.skops     the fitted scikit-learn pipeline
    versions/<version>/serving.npz     its fitted parts as plain arrays (what scoring reads)
    versions/<version>/manifest.json

- The pipeline is stored with skops, not pickle: loading it runs no code from the file and
  refuses any type that is not scikit-learn's, NumPy's or one of this project's feature steps.
  The serving arrays are read with `allow_pickle=False`. Scoring needs only those, so a model
  loads without importing scikit-learn; the pipeline is read (and its types checked) when
  training or a check asks for it, or at once with `load_model(..., pipeline=True)`.
- CURRENT covers the manifest with its hash, and the manifest covers both files with their
  hashes; the manifest is checked against a schema (`Manifest`) before anything is used.
- A version is only ever looked up inside the store's versions/ folder: names are plain, and a
  version folder that is a symlink, or resolves elsewhere, is refused.
- A version folder is written under a temporary name and renamed into place, and CURRENT is
  replaced atomically (write, then rename), so a crash at any moment leaves a valid current
  model. Loading refuses a scikit-learn version other than the one the model was trained with.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.fast import FEATURES_VERSION
from app.model import LABELS, Thresholds, TriageModel

HISTORY_FILE = "history.jsonl"
MODEL_FILE = "model.skops"
SERVING_FILE = "serving.npz"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "CURRENT"
VERSIONS_DIR = "versions"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# The only types a model file may hold beyond those skops trusts by default: our own feature steps.
TRUSTED_TYPES = frozenset(
    {
        "app.features.ItemPreparer",
        "app.features.TextVectorizer",
        "app.signals.SignalTransformer",  # saved before the move to app.features
        "app.features.SignalTransformer",
        "app.context.ContextTransformer",
        "app.features.ContextTransformer",
        "app.text.norm_text",
        "app.text.thread_text",
    }
)


class ModelError(Exception):
    """A model store or artifact that cannot be used; the message says why and what to do."""


class ManifestThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review: float = Field(ge=0.0, le=1.0)
    spam: float = Field(ge=0.0, le=1.0)


class Manifest(BaseModel):
    """What a manifest must hold to be trusted; other keys (metrics, params...) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    version: str = Field(pattern=VERSION_NAME.pattern)
    labels: list[str]
    versions: dict[str, str]
    features_version: int
    thresholds: ManifestThresholds
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    serving_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it (an import costs a second)."""
    return importlib.metadata.version("scikit-learn")


def runtime_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "scikit_learn": sklearn_version(), "numpy": np.__version__}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_version_name(name: str) -> str:
    if not VERSION_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"{name!r} is not a version name (letters, digits, '.', '_' and '-'; see `triage model list`)")
    return name


def version_dir(store: Path, name: str) -> Path:
    """The folder of a version inside the store; ModelError for a bad name, a symlink or a folder elsewhere."""
    check_version_name(name)
    versions = Path(store) / VERSIONS_DIR
    folder = versions / name
    if folder.is_symlink() or (folder.exists() and folder.resolve().parent != versions.resolve()):
        raise ModelError(f"version {name!r} is a link out of the model store: refusing to load it")
    if not (folder / MANIFEST_FILE).is_file():
        raise ModelError(f"no version {name!r} in {versions}")
    return folder


def read_pointer(store: Path) -> tuple[str, str | None] | None:
    """(version, manifest sha256) named by CURRENT, or None when there is no CURRENT."""
    pointer = Path(store) / POINTER_FILE
    if not pointer.is_file():
        return None
    try:
        text = pointer.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise ModelError(
            f"{POINTER_FILE} in the model store is not a readable pointer: repoint it with `triage model rollback VERSION`"
        ) from None
    parts = text.split()
    if not parts or len(parts) > 2:
        raise ModelError(f"{POINTER_FILE} in the model store names no version: repoint it with `triage model rollback VERSION`")
    check_version_name(parts[0])
    return parts[0], (parts[1] if len(parts) == 2 else None)


def resolve_version_dir(model_dir: Path) -> Path:
    """The folder holding manifest.json: `model_dir` itself (a version folder), or the version CURRENT names."""
    model_dir = Path(model_dir)
    if (model_dir / MANIFEST_FILE).is_file():
        return model_dir
    pointed = read_pointer(model_dir)
    if pointed is None:
        raise ModelError(
            f"no model in {model_dir}: neither {MANIFEST_FILE} nor {POINTER_FILE} found; train one with `triage train`"
        )
    return version_dir(model_dir, pointed[0])


def read_manifest(folder: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """A version's manifest, checked against its hash (when the pointer gives one) and the schema."""
    path = folder / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the manifest of {folder.name}: {exc.strerror}") from None
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise ModelError(f"the manifest of {folder.name} does not match the hash in {POINTER_FILE}: refusing to load it")
    try:
        data = json.loads(raw)
        manifest = Manifest.model_validate(data)
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ModelError(f"the manifest of {folder.name} is not valid ({where}: {first['msg']}): refusing to load it") from None
    if manifest.labels != list(LABELS):
        raise ModelError(f"the manifest of {folder.name} has labels {manifest.labels}, not {list(LABELS)}")
    return data


def current_manifest(model_dir: Path) -> tuple[Path, dict[str, Any]]:
    """(version folder, checked manifest) of a store root or a version folder, without loading the model."""
    model_dir = Path(model_dir)
    folder = resolve_version_dir(model_dir)
    pointed = None if folder == model_dir else read_pointer(model_dir)
    return folder, read_manifest(folder, pointed[1] if pointed else None)


def read_thresholds(model_dir: Path) -> Thresholds:
    """The thresholds of the model in `model_dir`, read from its manifest (no model load)."""
    return Thresholds(**current_manifest(model_dir)[1]["thresholds"])


def _verified(folder: Path, name: str, expected: str) -> bytes:
    """A version file's bytes, checked against the hash in its manifest (the bytes that were read)."""
    path = folder / name
    if not path.is_file():
        raise ModelError(f"{folder.name}/{name} is missing")
    raw = path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise ModelError(
            f"{folder.name}/{name} does not match its manifest (sha256 {actual[:12]}... != {expected[:12]}...): "
            "refusing to load it"
        )
    return raw


def load_model(model_dir: Path, pipeline: bool = False) -> TriageModel:
    """Load and verify a model (store root or version folder). Raises ModelError with the reason.

    Scoring reads serving.npz; the skops pipeline is read when first asked for, or now with `pipeline=True`.
    """
    folder, manifest = current_manifest(model_dir)
    _verified(folder, MODEL_FILE, manifest["artifact_sha256"])
    trained_with = str(manifest["versions"].get("scikit_learn", ""))
    if _minor(trained_with) != _minor(sklearn_version()):
        raise ModelError(
            f"model {manifest['version']} was trained with scikit-learn {trained_with}, this is {sklearn_version()}: "
            f"retrain with `triage train` (or install scikit-learn=={trained_with})"
        )
    check_features(manifest, "retrain with `triage train`")
    thresholds = Thresholds(**manifest["thresholds"])
    if pipeline or not manifest.get("serving_sha256"):  # versions saved before serving.npz existed
        fitted = _load_pipeline(folder, manifest["artifact_sha256"])
        try:
            return TriageModel(fitted, thresholds, manifest)
        except Exception as exc:  # a well-formed file holding the wrong thing
            raise ModelError(f"{folder.name}: the model does not load: {type(exc).__name__}: {exc}") from None
    serving = _verified(folder, SERVING_FILE, manifest["serving_sha256"])
    try:
        return TriageModel(
            None, thresholds, manifest, serving=serving, load_pipeline=lambda: _load_pipeline(folder, manifest["artifact_sha256"])
        )
    except Exception as exc:  # np.load refuses pickled objects (allow_pickle=False); anything else is the wrong content
        raise ModelError(f"{folder.name}/{SERVING_FILE} does not load: {type(exc).__name__}: {exc}") from None


def _load_pipeline(folder: Path, expected_sha256: str) -> Any:
    """The skops pipeline of a version folder: its hash checked again (it may be read long after the
    model loaded), then its types, before anything is built."""
    import skops.io as sio  # only here: importing skops costs more than loading the serving arrays

    raw = _verified(folder, MODEL_FILE, expected_sha256)
    try:
        untrusted = set(sio.get_untrusted_types(data=raw))
    except Exception as exc:  # not a skops file (a pickle, say): skops raises many kinds, and runs nothing
        raise ModelError(
            f"{folder.name}/{MODEL_FILE} is not a readable model file ({type(exc).__name__}): refusing to load it"
        ) from None
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ModelError(
            f"{folder.name}/{MODEL_FILE} holds types this project does not trust ({', '.join(refused[:5])}): refusing to load it"
        )
    try:
        return sio.loads(raw, trusted=sorted(untrusted))
    except Exception as exc:  # a well-formed file holding the wrong thing
        raise ModelError(f"{folder.name}: the model does not load: {type(exc).__name__}: {exc}") from None


def _readable(folder: Path) -> None:
    """Version folders are world-readable (mkdtemp makes them 0700): a service may run as another user."""
    os.chmod(folder, 0o755)
    for path in folder.iterdir():
        os.chmod(path, 0o644)


def save_model(model: TriageModel, store: Path, manifest: dict[str, Any], make_current: bool = True) -> Path:
    """Write a new version folder into a store (atomically) and, by default, point CURRENT at it."""
    store = Path(store)
    versions = store / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    version = check_version_name(manifest["version"])
    final = versions / version
    if final.exists():
        raise ModelError(f"version {version} already exists in {versions}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=versions))
    try:
        import skops.io as sio

        sio.dump(model.pipeline, tmp / MODEL_FILE, compression=zipfile.ZIP_DEFLATED)
        (tmp / SERVING_FILE).write_bytes(model.serving_bytes())
        manifest = dict(
            manifest,
            artifact_sha256=sha256_file(tmp / MODEL_FILE),
            artifact_file=MODEL_FILE,
            serving_sha256=sha256_file(tmp / SERVING_FILE),
            serving_file=SERVING_FILE,
        )
        write_atomic(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _readable(tmp)
        _checkpoint("before-version-rename")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        set_current(store, version)
    return final


def set_current(store: Path, version: str) -> None:
    """Point CURRENT at a version, atomically; the version, its pipeline included, must load and verify first."""
    folder = version_dir(store, version)
    load_model(folder, pipeline=True)
    digest = sha256_file(folder / MANIFEST_FILE)
    write_atomic(Path(store) / POINTER_FILE, f"{version} {digest}\n", checkpoint="before-pointer-rename")


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
        os.chmod(tmp, 0o644)
        if checkpoint:
            _checkpoint(checkpoint)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_version(store: Path) -> str | None:
    try:
        pointed = read_pointer(store)
    except ModelError:
        return None
    return pointed[0] if pointed else None


def list_versions(store: Path) -> list[dict[str, Any]]:
    """Manifests of every version in a store, oldest first, with `current` set on one."""
    current = current_version(store)
    out = []
    versions = Path(store) / VERSIONS_DIR
    for folder in sorted(versions.iterdir() if versions.is_dir() else []):
        if folder.name.startswith(".") or folder.is_symlink() or not (folder / MANIFEST_FILE).is_file():
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
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        if isinstance(entry, dict):
            out.append(entry)
    return out


def check_features(manifest: dict[str, Any], remedy: str) -> None:
    """ModelError unless the version was trained with the features this code computes."""
    if manifest["features_version"] != FEATURES_VERSION:
        raise ModelError(
            f"model {manifest['version']} was trained with features version {manifest['features_version']}, "
            f"this code computes version {FEATURES_VERSION}: {remedy}"
        )


def _servable(folder: Path) -> None:
    """Only a version this code can serve may become current: a pointer to another would leave the
    service and `triage score` refusing to load anything."""
    check_features(read_manifest(folder), "it cannot be made current (check out the code it was trained with)")


def rollback(store: Path, version: str | None = None) -> tuple[str | None, str]:
    """Make `version` current again; by default, the one current before the current one was promoted.

    Without a version it walks back along promotions only: after a rollback, a second call
    goes further back (never forward again; `promote` goes forward, by name). Returns
    (previous current, new current). Raises ModelError when there is nothing to go back to
    or the target does not verify.
    """
    store = Path(store)
    current = current_version(store)
    if version is None:
        for entry in reversed(read_history(store)):
            if entry.get("action") == "promote" and entry.get("version") == current and entry.get("previous"):
                version = entry["previous"]
                break
        else:
            raise ModelError(f"no earlier version to roll back to from {current}; name one (see `triage model list`)")
    _servable(version_dir(store, str(version)))
    set_current(store, str(version))
    record_history(store, "rollback", str(version), previous=current, reason=f"rolled back from {current}")
    return current, str(version)


def promote(store: Path, version: str) -> tuple[str | None, str]:
    """Make a named version current by hand (e.g. forward again after a rollback), recorded as a promotion."""
    store = Path(store)
    current = current_version(store)
    _servable(version_dir(store, version))
    set_current(store, version)
    record_history(store, "promote", version, previous=current, reason="promoted by hand")
    return current, version


def version_status(store: Path, manifest: dict[str, Any]) -> str:
    """'current', or what the history says happened to a version last, or 'candidate'/'rejected' from its manifest.

    A version counts as promoted only once CURRENT pointed at it (the history line is
    written after the pointer), so a run killed in between never shows a false promotion.
    """
    if manifest.get("current"):
        return "current"
    mine = [e for e in read_history(store) if e.get("version") == manifest.get("version")]
    if any(e.get("action") in ("promote", "rollback") for e in mine):
        return "replaced"  # it was current once
    if any(e.get("action") == "reject" for e in mine):
        return "rejected"
    return str(manifest.get("status") or "trained")
