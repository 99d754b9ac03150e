"""The lab installed, not only checked out: a wheel built from this repository, installed into a
fresh virtual environment, gives a `multicore-lab` command with the same tasks, flags and
defaults, usable from an unrelated directory, and an importable `lab` whose Dockerfile and trial
code travel as package data (the image built from the install is the checkout's image).

The fresh environment borrows the lab's dependencies from this checkout's .venv through a .pth
line (a plain path: .venv's own .pth files, among them this checkout's editable install, are not
read), so `lab` itself can only come from the wheel.
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import BASE_IMAGE, PROJECT_ROOT

pytestmark = pytest.mark.engine


def run(command, cwd, timeout=300):
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh venv's bin folder, an empty working directory outside the checkout)."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                 "-q", "-w", wheels, PROJECT_ROOT], cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = wheels.glob("multicore_lab-*.whl")
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    assert made.returncode == 0, made.stderr
    site = Path(run([venv / "bin" / "python", "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=root).stdout.strip())
    (site / "lab-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                "-q", "--no-deps", "--no-index", wheel], cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    work = root / "elsewhere"
    work.mkdir()
    return venv / "bin", work


def test_lab_comes_from_the_wheel_with_its_package_data(installed):
    bin_dir, work = installed
    code = ("import lab, sys; from lab import package_files as f; "
            "print(lab.__file__); print(f.DOCKERFILE); print(f.DEFAULTS.read_text()[:200]); "
            "print('pandas' in sys.modules)")
    done = run([bin_dir / "python", "-c", code], cwd=work)
    assert done.returncode == 0, done.stderr
    lab_file, dockerfile, *rest = done.stdout.splitlines()
    site = str(bin_dir.parent / "lib")
    assert lab_file.startswith(site) and dockerfile.startswith(site)  # not the checkout
    assert Path(dockerfile).read_bytes() == (PROJECT_ROOT / "docker" / "Dockerfile").read_bytes()
    assert rest[-1] == "False"  # import lab pulled in nothing host-side


def test_the_command_lists_the_tasks_and_plans_from_any_directory(installed):
    bin_dir, work = installed
    listed = run([bin_dir / "multicore-lab", "--list"], cwd=work)
    assert listed.returncode == 0, listed.stderr
    for name in ("scale", "ipc", "lessons", "report", "compare", "build", "info"):
        assert f"  {name} " in listed.stdout
    planned = run([bin_dir / "multicore-lab", "scale", "--cpus", "1", "--dry-run"], cwd=work)
    assert planned.returncode == 0, planned.stderr
    # the packaged defaults reached the program: 5 measured rounds + the warm-up (invoke.yaml)
    assert "x 6 rounds" in planned.stdout
    assert not (work / "results").exists()


def test_bad_input_is_one_line_and_exit_2(installed):
    bin_dir, work = installed
    done = run([bin_dir / "multicore-lab", "scale", "--cpus", "two"], cwd=work)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: --cpus") and len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr and not (work / "results").exists()
    unknown = run([bin_dir / "multicore-lab", "scale", "--no-such-flag"], cwd=work)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr


CONTEXT = ("import hashlib, tarfile; from lab.backends import image; "
           "tar = tarfile.open(fileobj=image._build_context('base')); "
           "print([(m.name, m.mode, m.uid, m.gid, "
           "hashlib.sha256(tar.extractfile(m).read()).hexdigest()) for m in tar.getmembers()])")


def test_the_installed_package_builds_the_checkouts_image(installed, trial_image, engine):
    """What the install sends the engine (its Dockerfile and trial code) is the checkout's, file
    by file, under the same digest tag; and the engine builds it (under a throwaway tag: the
    Dockerfile imports the trial code in the image, so a missing file fails the build)."""
    bin_dir, work = installed
    ours = run([sys.executable, "-c", CONTEXT], cwd=PROJECT_ROOT)
    theirs = run([bin_dir / "python", "-c", CONTEXT], cwd=work)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    assert theirs.stdout == ours.stdout and "lab/experiments/__main__.py" in theirs.stdout
    tag = f"multicore-lab-install-test:{trial_image.tag.partition(':')[2]}"
    code = ("import docker; from lab.backends import image; c = docker.from_env(); "
            f"print(image.image_tag({BASE_IMAGE!r})); "
            f"image._build(c, {BASE_IMAGE!r}, {tag!r}, False, lambda *_: None); "
            f"print(c.images.get({tag!r}).labels['multicore-lab.base'])")
    try:
        done = run([bin_dir / "python", "-c", code], cwd=work)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == [trial_image.tag, BASE_IMAGE]
    finally:
        try:
            engine.images.remove(tag)  # the tag only
        except Exception:  # noqa: BLE001 (nothing was tagged when the build failed)
            pass


def test_a_real_run_lands_in_the_working_directorys_results(installed, trial_image):
    bin_dir, work = installed
    done = run([bin_dir / "multicore-lab", "scale", "--cpus", "1", "--variants", "serial",
                "--work", "100000", "--repeat", "1", "--format", "json"], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    folder = Path(outcome["folder"])
    assert folder.parent == (work / "results").resolve()
    assert outcome["status"] == "complete" and outcome["task"] == "scale"
    assert [row["variant"] for row in outcome["summary"]] == ["serial"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["image"]["tag"] == trial_image.tag
    assert (folder / "report.html").exists()
    assert "trials" in done.stderr  # the human output went to stderr
