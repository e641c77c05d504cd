"""All settings in one place, read from environment variables with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


def _env_float(name: str, default: float | None) -> float | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {value!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"environment variable {name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Runtime settings; build with `Settings.from_env()`."""

    model_dir: Path = PROJECT_ROOT / "model"
    data_dir: Path = PROJECT_ROOT / "data"
    reports_dir: Path = PROJECT_ROOT / "reports"
    db_path: Path = PROJECT_ROOT / "triage.db"
    lists_file: Path | None = None
    api_token: str | None = None
    max_text_chars: int = 20_000
    max_batch_items: int = 1_000
    max_body_bytes: int = 5 * 1024 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    review_threshold: float | None = None
    spam_threshold: float | None = None
    reload_poll_seconds: float = 5.0  # 0 turns the model/lists watcher off
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    bench: bool = False  # adds the hidden /v1/_bench/constant route (scripts/bench_api.py)
    batch_jobs: int = 0  # `triage score` worker processes; 0 = all cores
    batch_chunk_rows: int = 1_000  # rows per chunk sent to a worker
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read every TRIAGE_* variable, falling back to the defaults above."""
        lists = os.environ.get("TRIAGE_LISTS_FILE")
        return cls(
            model_dir=_env_path("TRIAGE_MODEL_DIR", cls.model_dir),
            data_dir=_env_path("TRIAGE_DATA_DIR", cls.data_dir),
            reports_dir=_env_path("TRIAGE_REPORTS_DIR", cls.reports_dir),
            db_path=_env_path("TRIAGE_DB", cls.db_path),
            lists_file=Path(lists) if lists else None,
            api_token=os.environ.get("TRIAGE_API_TOKEN") or None,
            max_text_chars=_env_int("TRIAGE_MAX_TEXT_CHARS", cls.max_text_chars),
            max_batch_items=_env_int("TRIAGE_MAX_BATCH_ITEMS", cls.max_batch_items),
            max_body_bytes=_env_int("TRIAGE_MAX_BODY_BYTES", cls.max_body_bytes),
            max_upload_bytes=_env_int("TRIAGE_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            review_threshold=_env_float("TRIAGE_REVIEW_THRESHOLD", None),
            spam_threshold=_env_float("TRIAGE_SPAM_THRESHOLD", None),
            reload_poll_seconds=_env_float("TRIAGE_RELOAD_POLL_SECONDS", cls.reload_poll_seconds) or 0.0,
            host=os.environ.get("TRIAGE_HOST") or cls.host,
            port=_env_int("TRIAGE_PORT", cls.port),
            workers=_env_int("TRIAGE_WORKERS", cls.workers),
            bench=_env_bool("TRIAGE_BENCH", cls.bench),
            batch_jobs=_env_int("TRIAGE_BATCH_JOBS", cls.batch_jobs),
            batch_chunk_rows=_env_int("TRIAGE_BATCH_CHUNK_ROWS", cls.batch_chunk_rows),
        )
