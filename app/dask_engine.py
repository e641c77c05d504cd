"""`triage score --engine dask`: the same scoring core on a Dask cluster.

The client reads the inputs as `triage score` always does (so the errors file and the
read = scored + skipped + failed accounting are the same) and sends chunks of rows to the
cluster, where each worker scores them with the one scoring core (`batch.score_chunk`).
A worker plugin loads the model and the lists once per worker, from a path every worker
can read (a shared folder on a real cluster); the client checks that every worker serves the
model version it expects before sending anything. Results come back in input order.

Install with `pip install -e ".[dask]"`. With no scheduler address a `LocalCluster` with one
worker per core is started; with one (`tcp://host:8786`) the user's cluster is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.batch import _init_worker, _score_in_worker

try:  # an optional extra: the default install runs without Dask
    from distributed import Client, LocalCluster, WorkerPlugin
except ImportError:  # pragma: no cover - exercised only without the extra
    Client = LocalCluster = WorkerPlugin = None  # type: ignore[assignment,misc]


def _require_dask() -> None:
    if Client is None:
        raise ValueError('--engine dask needs Dask: pip install -e ".[dask]"')


class ScorerPlugin(WorkerPlugin if WorkerPlugin is not None else object):  # type: ignore[misc]
    """Loads the scorer once when a worker starts (and on workers that join later)."""

    name = "inbound-triage-scorer"

    def __init__(self, model_dir: str, lists_file: str | None, n_reasons: int):
        self.model_dir, self.lists_file, self.n_reasons = model_dir, lists_file, n_reasons

    def setup(self, worker: Any) -> None:
        _init_worker(None, self.model_dir, self.lists_file, self.n_reasons)


def _served_version() -> str:
    from app.batch import _WORKER

    return str(_WORKER["scorer"].version)


class DaskPool:
    """A Dask client with the scorer on every worker, used like the local process pool."""

    def __init__(
        self,
        scheduler: str | None,
        jobs: int,
        model_dir: Path,
        lists_file: Path | None,
        n_reasons: int,
        expected_version: str,
        log: Callable[[str], None] | None = None,
    ):
        _require_dask()
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0")
            self.client = Client(self.cluster)
        if log is not None:
            log(f"dask: {self.client.dashboard_link or 'no dashboard'} ({len(self.client.scheduler_info()['workers'])} workers)")
        model_path = str(Path(model_dir).resolve())
        lists_path = str(Path(lists_file).resolve()) if lists_file else None
        self.client.register_plugin(ScorerPlugin(model_path, lists_path, n_reasons))
        versions = self.client.run(_served_version)
        wrong = {worker: v for worker, v in versions.items() if v != expected_version}
        if wrong:
            self.shutdown()
            raise ValueError(f"dask workers serve another model than {expected_version}: {wrong}")
        self.workers = len(versions)

    def submit(self, fn: Callable[..., Any], items: list[Any]) -> Any:
        if fn is not _score_in_worker:
            raise ValueError("the dask pool scores chunks only")
        return self.client.submit(_score_in_worker, items, pure=False)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
