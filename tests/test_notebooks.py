"""The notebooks in notebooks/ run from top to bottom on the shipped model and data, so they never rot.

Each notebook is copied to a temporary folder and executed there with nbclient, in a
`python3` kernel that runs this interpreter (whatever other `python3` kernels the machine
has) with matplotlib's Agg backend, on every tenth inbox of the corpus (TRIAGE_NOTEBOOK_EVERY; a
person running them reads every inbox). The committed files are never rewritten: a second
test checks that they were saved with their outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

from app.settings import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
EVERY_NTH_INBOX = 10  # the notebooks' paths all run on a tenth of the inboxes, in about a third of the time
CELL_TIMEOUT = 240  # seconds; scoring the test inboxes in notebook 02 is the longest cell

# notebook -> (working directory it is started from, strings its outputs must show)
CASES: dict[str, tuple[Path, list[str]]] = {
    "01-corpus.ipynb": (
        NOTEBOOKS,  # as Jupyter starts it
        [
            "labelled items in",
            "largest hand:",
            "countries",
            "real (FIELD_NOTES)",
            "first-contact subset:",
            "Cohen's kappa",
        ],
    ),
    "02-model.ipynb": (
        PROJECT_ROOT,  # started from the repository root: the project root is still found
        [
            "export macro-F1",
            "grouped CV, export",
            "test inboxes, export",
            "confusion (rows true, cols pred: genuine, sales_pitch, spam)",
            "max |intercept + contributions - decision value|",
            "misfiled",
            "share of top-3 reasons",
            "signals measured on",
        ],
    ),
    "03-retraining.ipynb": (
        NOTEBOOKS,
        ["shipped model: base", "first-contact model: base", "mean_gain", "genuine→spam after"],
    ),
}


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory):
    """A `python3` kernel spec for this interpreter, found first; matplotlib without a display."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter / "kernels" / "python3")  # argv: [sys.executable, -m, ipykernel_launcher, ...]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter))  # searched before the user's and the environment's kernels
        mp.setenv("MPLBACKEND", "Agg")  # inherited by the kernel
        mp.setenv("TRIAGE_NOTEBOOK_EVERY", str(EVERY_NTH_INBOX))  # the figures are the committed run's, not this one's
        yield


def output_text(nb: Any) -> str:
    """Every text a notebook's code cells show: streams, plain-text and HTML results."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif out["output_type"] in ("execute_result", "display_data"):
                parts += [out["data"].get("text/plain", ""), out["data"].get("text/html", "")]
    return "\n".join(parts)


def errors_of(nb: Any) -> list[str]:
    return [
        f"{out['ename']}: {out['evalue']}"
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out["output_type"] == "error"
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_and_shows_its_key_outputs(name: str, tmp_path: Path, kernel_env: None) -> None:
    cwd, expected = CASES[name]
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:  # start from a clean notebook: nothing below comes from the committed outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, startup_timeout=60, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
    nbformat.write(nb, copy)  # the executed copy stays in tmp_path for a look after a failure

    assert errors_of(nb) == []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells)
    text = output_text(nb)
    missing = [s for s in expected if s not in text]
    assert not missing, f"{name}: outputs lack {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_committed_notebook_keeps_its_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    # executed once, top to bottom, and saved with the results
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))
    assert errors_of(nb) == []
    stderr = [out["text"] for c in code_cells for out in c.outputs if out["output_type"] == "stream" and out["name"] == "stderr"]
    assert stderr == [], "the committed notebook shows warnings"
    images = [out for c in code_cells for out in c.outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 5, f"{name}: expected its plots in the committed outputs, found {len(images)}"
    text = output_text(nb)
    missing = [s for s in CASES[name][1] if s not in text]
    assert not missing, f"{name}: committed outputs lack {missing}"
    assert "inbox only" not in text, f"{name}: saved from a sampled run (TRIAGE_NOTEBOOK_EVERY), not a full one"
