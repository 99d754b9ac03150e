"""benchmarks.docs_images: the README's images remade from the runs committed under docs/runs/,
into a temporary folder (docs/ is left as it is); refusals in one line.

report.png needs a headless Chromium: where none is installed the screenshot is skipped with the
reason (also under CI=true: the screenshot is a picture of report.html, which tests/test_report.py
checks itself); the three charts never need it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import docs_images

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNS = DOCS / "runs"
CHARTS = ("speedup.png", "ipc.png", "lessons.png")
WIDTH = 800
PNG = b"\x89PNG\r\n\x1a\n"
NO_CHROMIUM = ("no headless Chromium (chromium, chromium-browser or google-chrome on PATH); "
               "`apt-get install chromium` makes report.png")


def script(*args, env=None):
    return subprocess.run([sys.executable, "-m", "benchmarks.docs_images", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


def png_size(path):
    from PIL import Image
    assert path.read_bytes()[:8] == PNG, f"{path.name} is not a PNG"
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The script run once on the committed runs, into a temporary folder."""
    out = tmp_path_factory.mktemp("docs")
    screenshot = docs_images.browser() is not None
    before = snapshot(RUNS)
    done = script("--out", str(out), *([] if screenshot else ["--no-screenshot"]))
    assert done.returncode == 0, done.stderr
    assert snapshot(RUNS) == before, "the script wrote into docs/runs/"
    return out, screenshot, done.stdout


def test_committed_runs_are_whole():
    runs = docs_images.recorded_runs(RUNS)
    assert set(runs) == {"scale", "ipc", "lessons"}
    for run in runs.values():
        assert sorted(p.name for p in run.iterdir()) == sorted(docs_images.RUN_FILES)


@pytest.mark.parametrize("name", CHARTS)
def test_chart_images(made, name):
    out, _, said = made
    width, height = png_size(out / name)
    assert width == WIDTH and 150 < height < 1600, (width, height)
    assert (out / name).stat().st_size < 150_000
    line = next(line for line in said.splitlines() if line.startswith(str(out / name)))
    assert re.search(r"run \d{8}T\d{6}Z-\w+-\w+ \(`.*invoke .*`\), on .*\d+ CPUs.*Python \d", line)


def test_report_screenshot(made):
    out, screenshot, said = made
    if not screenshot:
        assert "report.png not remade (--no-screenshot)" in said
        pytest.skip(NO_CHROMIUM)
    assert png_size(out / "report.png") == (WIDTH, 600)  # the 1200x900 window, shrunk
    assert (out / "report.png").stat().st_size < 200_000


def test_readme_shows_the_images():
    """The README's "What a run gives" links every image, and every one is committed, small."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What a run gives", 1)[1].split("\n## ", 1)[0]
    for name in CHARTS + ("report.png",):
        assert f"](docs/{name})" in section, name
        assert png_size(DOCS / name)[0] <= WIDTH
    assert "python -m benchmarks.docs_images" in section
    for run in docs_images.recorded_runs(RUNS).values():
        assert run.name in section, run.name


def test_refuses_a_missing_run(tmp_path):
    runs = tmp_path / "runs"
    scale = docs_images.recorded_runs(RUNS)["scale"]
    (runs / scale.name).mkdir(parents=True)
    for name in docs_images.RUN_FILES:
        (runs / scale.name / name).write_bytes((scale / name).read_bytes())
    out = tmp_path / "out"
    done = script("--runs", str(runs), "--out", str(out), "--no-screenshot")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: no recorded ipc or lessons run under ")
    assert not out.exists()


def test_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "runs" / "half").mkdir(parents=True)
    (tmp_path / "runs" / "half" / "meta.json").write_text("{}")
    done = script("--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
                  "--no-screenshot")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "lacks plan.json, raw.jsonl" in done.stderr


def test_says_in_one_line_that_chromium_is_missing(tmp_path):
    out = tmp_path / "out"
    done = script("--out", str(out), env={"CHROMIUM": str(tmp_path / "no-such-browser")})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no headless Chromium" in done.stderr and "--no-screenshot" in done.stderr
    assert not out.exists()
