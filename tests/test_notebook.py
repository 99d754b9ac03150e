"""The example notebook (notebooks/own_code.ipynb, the tutorial of the Python API) executed
headless as a user's Jupyter would run it (nbclient and an ipykernel), in a copy of its folder so
its runs land in that copy's results/: every cell runs without an error, and its outputs are what
the notebook promises (a DataFrame's table, a chart's image, the run's report, one-line errors),
a function of a file beside the notebook (my_work.py:crunch) measured with target=."""

import json
import shutil

import pytest

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.engine

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def outputs_of(cell):
    return cell.get("outputs", [])


def test_the_example_notebook_runs_and_shows_a_table_a_chart_and_the_report(tmp_path,
                                                                            trial_image):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns("results", ".*"))
    notebook = nbformat.read(folder / "own_code.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    every = [output for cell in code for output in outputs_of(cell)]
    assert not [o for o in every if o.output_type == "error"]
    htmls = [o["data"]["text/html"] for o in every if "text/html" in o.get("data", {})]
    assert any("<table" in page and "median_s" in page for page in htmls)  # run.summary
    assert any("image/png" in o.get("data", {}) for o in every)           # run.charts[...]
    runs = sorted(path for path in (folder / "results").iterdir()         # ./results, the cwd's
                  if (path / "meta.json").exists() and not path.is_symlink())
    assert len(runs) == 2  # the tutorial's task, then my_work.py:crunch
    run_folder, own = runs
    assert any(f"Run {run_folder.name}" in page and "data:image/png" in page for page in htmls)
    own_trials = [json.loads(line) for line in (own / "raw.jsonl").read_text().splitlines()]
    assert own_trials and all(t["ok"] and t["experiment"] == "target" for t in own_trials)
    assert sum("<table" in page and "median_s" in page for page in htmls) == 2
    streams = "".join(o.get("text", "") for o in every if o.output_type == "stream")
    assert "[1/" in streams and "round" in streams                         # progress, per trial
    assert "error: --cpus 'two'" in streams                                # the one line
    assert "Traceback" not in streams
    assert (run_folder / "report.html").exists()


def test_a_refusal_in_a_notebook_shows_its_one_line_and_no_traceback(tmp_path):
    """An uncaught LabError in a cell: Jupyter shows the command line's one line alone."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import lab\nlab.scale(cpus='two')")])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    [error] = notebook.cells[0].outputs
    assert error.output_type == "error" and error.ename == "LabError"
    assert error.traceback == [f"LabError: {error.evalue}"]
    assert error.evalue.startswith("error: --cpus 'two'")
    assert list(tmp_path.iterdir()) == []  # nothing written
