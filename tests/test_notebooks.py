"""The notebooks run top to bottom (small sizes: BRAINSIM_NOTEBOOK_SMALL=1).

Each notebook is executed with nbclient in a fresh kernel of this Python,
in a temporary working folder; a cell that raises fails the test with the
cell's traceback. Outputs are not written back (the committed notebooks
carry none, which is checked too).
"""
import pathlib

import nbclient  # the test extra installs nbclient, nbformat and ipykernel: notebooks
import nbformat  # run in CI, so a missing package is an error, not a skip
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
#: longest a cell may run (s) before the kernel is interrupted and the test fails; the
#: small sizes take 10-60 s per notebook on 2 cores once the Numba cache is warm
CELL_TIMEOUT = {"05_dask.ipynb": 300}
DEFAULT_CELL_TIMEOUT = 180

paths = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_notebooks_are_there():
    names = {p.name for p in paths}
    assert {"01_quickstart.ipynb", "02_microcircuit.ipynb", "03_multi_area.ipynb",
            "05_dask.ipynb", "06_modify_properties.ipynb"} <= names


@pytest.mark.parametrize("path", paths, ids=[p.stem for p in paths])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(not c.outputs and c.execution_count is None for c in code), \
        "strip the outputs before committing (jupyter nbconvert --clear-output --inplace)"
    assert "BRAINSIM_NOTEBOOK_SMALL" in code[0].source, \
        "the first code cell reads BRAINSIM_NOTEBOOK_SMALL (small sizes in CI)"


@pytest.mark.slow
@pytest.mark.parametrize("path", paths, ids=[p.stem for p in paths])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # one Numba thread: the small networks step faster without the per-step barrier
    # between threads (a loaded 2-core machine makes it cost up to ms per step)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's frozen-modules note
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT.get(path.name, DEFAULT_CELL_TIMEOUT), kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the traceback) or CellTimeoutError
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
