"""The engine goes away, the disk fills up (issue 7): the finished trials stay, the run fails in
one line, and --resume finishes it. Shared helpers: tests/robustness_kit.py.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.robustness_kit import (  # noqa: F401 (test_image: a fixture)
    SEED, TEST_REPOSITORY, draw, finish, labelled, libc_umount, measured_keys, need, plan_keys,
    private_engine_or_skip, records_of, scale_args, start_invoke, test_image, wait_for_records)

# --- the engine goes away, the disk fills up ---------------------------------------------------

def test_engine_gone_mid_run_keeps_the_finished_trials_and_fails_the_run(engine, trial_image,
                                                                        tmp_path):
    private = private_engine_or_skip()
    try:
        tag = f"{TEST_REPOSITORY}:gone"
        private.load(engine, trial_image.id, tag)
        k = draw(1, 4, "engine killed after record")
        process = start_invoke(*scale_args(tmp_path, tag), env={"DOCKER_HOST": private.host})
        raw, before = wait_for_records(process, tmp_path, k)
        private.kill()
        code, out, err = finish(process, timeout=120)
    finally:
        private.stop()
    note = f"k={k} LAB_TEST_SEED={SEED}\n{out[-3000:]}\n{err[-3000:]}"
    print(out, err)
    assert code == 1, note
    assert "Run failed: the Docker engine stopped answering" in out, note
    assert f"Run {raw.parent.name} failed" in out and "Traceback" not in err, note
    meta = json.loads((raw.parent / "meta.json").read_text())
    assert meta["status"] == "failed" and "Docker engine stopped answering" in meta["failure"]
    data = raw.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n"), note
    records = records_of(raw)
    assert len(records) >= k
    # The trial the engine took with it is not recorded as a (false) failed measurement.
    assert all(r["ok"] for r in records), [r["error"] for r in records]


@pytest.fixture
def tiny_tmpfs():
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="mcl-full-", dir="/tmp"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    need(done.returncode == 0, f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)
    if mount.is_mount():
        libc_umount(mount)
    shutil.rmtree(mount, ignore_errors=True)


def fill(folder):
    """Take every byte left on the tmpfs mounted at `folder` (and never on any other disk)."""
    with open("/proc/mounts") as handle:
        kinds = {line.split()[1]: line.split()[2] for line in handle}
    assert kinds.get(str(folder)) == "tmpfs", f"{folder} is not a tmpfs mount point: not filling it"
    chunk = 64 * 1024
    with open(folder / "filler", "wb", buffering=0) as handle:
        while chunk:
            try:
                handle.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == 28  # ENOSPC
                chunk //= 2


def test_full_disk_stops_the_run_cleanly_and_resume_finishes_it(engine, test_image, tiny_tmpfs):
    results = tiny_tmpfs / "results"
    k = draw(1, 4, "disk filled after record")
    process = start_invoke(*scale_args(results, test_image))
    raw, before = wait_for_records(process, results, k)
    fill(tiny_tmpfs)
    code, out, err = finish(process)
    note = f"k={k} LAB_TEST_SEED={SEED}\n{out[-3000:]}\n{err[-3000:]}"
    print(out, err)
    assert code == 1, note
    assert "Run failed: the disk is full (no space left on device" in out, note
    assert "Traceback" not in err, note
    data = raw.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n"), note  # no half record
    records = records_of(raw)  # every line parses
    assert k <= len(records) < 9 and all(r["ok"] for r in records), note
    meta = json.loads((raw.parent / "meta.json").read_text())
    assert meta["status"] == "failed" and "disk is full" in meta["failure"]
    assert labelled(engine, raw.parent.name) == []

    (tiny_tmpfs / "filler").unlink()  # room again: the run can be finished
    done = invoke("scale", "--resume", raw.parent.name, "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert raw.read_bytes().startswith(data)
    assert sorted(measured_keys(raw)) == sorted(plan_keys(raw.parent))
    assert json.loads((raw.parent / "meta.json").read_text())["status"] == "complete"
