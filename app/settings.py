"""All settings in one place: one pydantic-settings class, read from TRIAGE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.sources import Limits
from app.workers import DEFAULT_TRAIN_JOBS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings; every field is read from TRIAGE_<NAME> (e.g. TRIAGE_MAX_TEXT_CHARS), validated."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_ignore_empty=True, frozen=True, protected_namespaces=(), populate_by_name=True
    )

    model_dir: Path = Field(PROJECT_ROOT / "model", description="model store (CURRENT + versions/)")
    data_dir: Path = Field(PROJECT_ROOT / "data", description="training data")
    reports_dir: Path = Field(PROJECT_ROOT / "reports", description="where evaluation reports are written")
    db_path: Path = Field(
        PROJECT_ROOT / "triage.db", validation_alias=AliasChoices("TRIAGE_DB", "TRIAGE_DB_PATH"), description="feedback store"
    )
    lists_file: Path | None = Field(None, description="allow/deny lists (JSON), applied before the model")
    api_token: str | None = Field(None, description="when set, every endpoint but /healthz and /readyz needs it")
    session_secret: str | None = Field(None, description="signs the page's session cookie; random per process when unset")
    max_text_chars: int = Field(20_000, ge=1, description="longest text scored, per item or row")
    max_batch_items: int = Field(1_000, ge=1, description="items per /v1/score/batch request")
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1, description="largest JSON request body")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="largest uploaded file")
    max_unpacked_bytes: int = Field(200 * 1024 * 1024, ge=1, description="bytes read out of a zip (an export or an upload)")
    max_rows: int = Field(2_000_000, ge=1, description="rows read from one run's inputs or one upload")
    max_conversation_rows: int = Field(20_000, ge=1, description="rows of one conversation in a LinkedIn export")
    max_record_lines: int = Field(1_000, ge=1, description="physical lines one CSV record may span (an unclosed quote)")
    max_line_bytes: int = Field(4 * 1024 * 1024, ge=1, description="bytes of one physical line of an input file")
    review_threshold: float | None = Field(None, ge=0.0, le=1.0, description="overrides the manifest's review threshold")
    spam_threshold: float | None = Field(None, ge=0.0, le=1.0, description="overrides the manifest's spam threshold")
    score_timeout_seconds: float = Field(10.0, gt=0, description="a request's scoring deadline; past it the answer is 503")
    reload_poll_seconds: float = Field(5.0, ge=0.0, description="how often the model folder is checked; 0: never")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    bench: bool = Field(False, description="adds the hidden /v1/_bench/constant route (scripts/bench_api.py)")
    batch_jobs: int = Field(0, ge=0, description="`triage score` worker processes; 0 = all cores")
    batch_chunk_rows: int = Field(1_000, ge=1, description="rows per chunk sent to a worker")
    train_jobs: int = Field(
        DEFAULT_TRAIN_JOBS,
        ge=1,
        description="worker processes for the folds of `triage train`, `retrain` and `compare`; 1 = in this process",
    )

    def limits(self) -> Limits:
        """What one input may cost, for the readers."""
        return Limits(
            unpacked_bytes=self.max_unpacked_bytes,
            rows=self.max_rows,
            conversation_rows=self.max_conversation_rows,
            record_lines=self.max_record_lines,
            line_bytes=self.max_line_bytes,
        )

    @classmethod
    def from_env(cls) -> Settings:
        """Read every TRIAGE_* variable now (ValidationError names the variable that is wrong)."""
        return cls()


def get_settings() -> Settings:
    return Settings.from_env()
