"""Bad input touches nothing (issue 7): refused in one line, exit 2, before any container is
created (watched on a test-owned engine) or any file written. Shared helpers:
tests/robustness_kit.py.
"""

import os
import subprocess
import time

import pytest

from tests.conftest import invoke
from tests.robustness_kit import (  # noqa: F401 (quiet_engine: a fixture)
    HOST_CPUS, error_lines, need, quiet_engine, snapshot)

# --- bad input touches nothing -----------------------------------------------------------------

NOBODY = "unix:///tmp/mcl-nobody-answers.sock"
BAD_INPUTS = [
    # unknown option values
    (["--backend", "cloud"], "--backend 'cloud': unknown; allowed: auto, docker, local"),
    (["--placement", "diagonal"], "--placement 'diagonal': unknown; allowed: spread, compact"),
    (["--start-method", "clone"], "--start-method 'clone': unknown; allowed: fork, spawn, "
                                  "forkserver"),
    (["--variants", "strong,warp"], "--variants 'warp': unknown; allowed: "),
    (["--workers", "many"], "--workers 'many': not allowed; allowed: 'cpus', 'default' or whole"),
    (["--work", "lots"], "--work 'lots': not allowed; allowed: auto, seed, or a whole number"),
    # CPU counts outside the host
    (["--cpus", "0"], "--cpus '0': 0 CPUs is outside this host; allowed: 1 to"),
    (["--cpus", f"1,{HOST_CPUS + 1}"], f"{HOST_CPUS + 1} CPUs is outside this host; allowed: 1 "
                                       f"to {HOST_CPUS}"),
    (["--quota", str(HOST_CPUS + 1)], f"is outside 0.01 to {HOST_CPUS} CPUs"),
    # non-numeric or empty list items
    (["--cpus", "a,b"], "--cpus 'a,b': 'a' is not a whole number; allowed: whole CPU counts"),
    (["--cpus", "1.5"], "'1.5' is not a whole number"),
    (["--quota", "half"], "--quota 'half': 'half' is not a number; allowed: CPU quotas"),
    (["--workers", "2,x"], "--workers 'x': not allowed"),
    (["--repeat", "two"], "--repeat 'two': not allowed; allowed: a whole number of at least 1"),
    (["--seed", "abc"], "--seed 'abc': not allowed; allowed: a whole number"),
    (["--cpus", "1,,2"], "--cpus '1,,2': empty item; allowed: a comma-separated list"),
    (["--cpus="], "--cpus '': empty item"),
    (["--variants", "strong,"], "--variants 'strong,': empty item"),
    (["--quota", "0.5,,1"], "--quota '0.5,,1': empty item"),
    # zero or negative repeats, counts and sizes
    (["--repeat", "0"], "--repeat '0': not allowed; allowed: a whole number of at least 1"),
    (["--repeat=-1"], "--repeat '-1': not allowed"),
    (["--workers", "0"], "--workers '0': not allowed"),
    (["--workers=-2"], "--workers '-2': not allowed"),
    (["--work", "0"], "--work '0': not allowed"),
    (["--work=-3"], "--work '-3': not allowed"),
    # counts past what a trial can hold or finish
    (["--workers", "1,100000"], "--workers '100000': not allowed; allowed: 'cpus', 'default' or "
                                "whole numbers from 1 to 256"),
    (["--work", "1e99"], "--work '1e99': not allowed; allowed: auto, seed, or a whole number of "
                         "iterations from 1 to 1e12"),
    (["--quota", "0"], "--quota '0': 0 is outside 0.01"),
    (["--quota=-1"], "--quota '-1': -1 is outside 0.01"),
    # a results folder that is not writable
    (["READ-ONLY"], "is not writable; pass --results-dir a folder you can write"),
    (["UNDER-A-FILE"], "is not writable; pass --results-dir a folder you can write"),
    # an image name that does not parse
    (["--image", "Not An Image!"], "--image 'Not An Image!': not an image name; allowed: names"),
    (["--base-image", "UPPER/Case:x"], "--base-image 'UPPER/Case:x': not an image name"),
    (["--base-image", "multicore-lab-base:trixie,"], "--base-image 'multicore-lab-base:trixie,': "
                                                     "empty item"),
    # a Docker host that does not answer
    (["--backend", "docker", "DOCKER_HOST=" + NOBODY], "--backend docker: the Docker engine does "
                                                       "not answer"),
    (["--backend", "auto", "DOCKER_HOST=" + NOBODY], "--backend auto: the Docker engine does not "
                                                     "answer"),
    # a run to resume that does not exist
    (["--resume", "20990101T000000Z-scale-0000"], "--resume '20990101T000000Z-scale-0000': no "
                                                  "such run; allowed: a run id under"),
    (["--resume="], "--resume '': empty; allowed: a run id"),
]


@pytest.fixture
def results_place(request, tmp_path):
    """Where the row's run would go, and what is there before: a folder that does not exist
    yet, a read-only tmpfs, or a path under a regular file."""
    kind = request.param
    if kind == "READ-ONLY":
        need(os.geteuid() == 0, "mounting a read-only tmpfs needs root")
        place = tmp_path / "read-only"
        place.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(place)],
                              capture_output=True, text=True)
        need(done.returncode == 0, f"cannot mount a read-only tmpfs: {done.stderr.strip()}")
        yield place, place
        subprocess.run(["umount", str(place)], capture_output=True)
    elif kind == "UNDER-A-FILE":
        regular = tmp_path / "a-file"
        regular.write_text("not a folder\n")
        yield regular / "results", regular
    else:
        yield tmp_path / "results", tmp_path / "results"


@pytest.mark.parametrize("args, message, results_place",
                         [(a, m, a[0] if a[0] in ("READ-ONLY", "UNDER-A-FILE") else "new")
                          for a, m in BAD_INPUTS],
                         ids=[" ".join(a) for a, _ in BAD_INPUTS], indirect=["results_place"])
def test_bad_input_is_refused_in_one_line_before_anything_runs(quiet_engine, args, message,
                                                               results_place):
    results, watched = results_place
    env = {"DOCKER_HOST": quiet_engine.host}  # an engine of the test's own: its events are ours
    flags = []
    for arg in args:
        if arg.startswith("DOCKER_HOST="):
            env["DOCKER_HOST"] = arg.split("=", 1)[1]
        elif arg not in ("READ-ONLY", "UNDER-A-FILE"):
            flags.append(arg)
    before = snapshot(watched)
    since = time.time()
    done = invoke("scale", "--results-dir", str(results), *flags, env=env, timeout=120)
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert done.stdout == ""
    assert snapshot(watched) == before  # no run folder; for a new place, not even the folder
    created = list(quiet_engine.client.events(since=since - 1, until=time.time(), decode=True,
                                              filters={"type": "container", "event": "create"}))
    assert created == []


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "multicore-lab-base:nope: 'nope' is not a suite debootstrap knows; "
                          "allowed: a Debian suite such as bookworm (3.11), trixie (3.13)"),
    (["--base-image", "BAD IMAGE"], "--base-image 'BAD IMAGE': not an image name; allowed:"),
])
def test_build_refuses_a_suite_or_image_name_it_cannot_make_in_one_line(args, message):
    """Before debootstrap or the engine is asked: one line, exit 2, nothing built."""
    done = invoke("build", *args)
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "debootstrap:" not in done.stdout and "Traceback" not in done.stderr
