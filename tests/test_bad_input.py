"""Bad input is refused in one line, exit 2, before anything runs or is written, with no Docker
engine at all: these checks need no engine and no root, and run everywhere, fast."""

import pytest

from tests.conftest import invoke

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}

CASES = [
    (["scale", "--cpus", "a,b"], {}, "--cpus 'a,b': 'a' is not a whole number"),
    (["scale", "--repeat", "0"], {}, "--repeat '0': not allowed"),
    (["scale", "--placement", ""], {}, "--placement '': unknown; allowed: spread, compact"),
    (["ipc", "--placement", ""], {}, "--placement '': unknown; allowed: spread, compact"),
    (["scale", "--variants", "warp"], {}, "--variants 'warp': unknown; allowed: serial"),
    (["scale", "--variants", "test_skip_one"], {}, "--variants 'test_skip_one': unknown"),
    (["scale", "--work", "-3"], {}, "--work '-3': not allowed"),
    (["scale", "--quota", "lots"], {}, "--quota 'lots': 'lots' is not a number"),
    (["scale", "--seed", "x"], {}, "--seed 'x': not allowed"),
    (["scale", "--start-method", "vfork"], {}, "--start-method 'vfork': unknown"),
    (["scale", "--backend", "cloud"], {}, "--backend 'cloud': unknown"),
    (["scale"], {"INVOKE_SCALE_TARGET_SECONDS": "abc"}, "scale.target_seconds 'abc'"),
    (["scale"], {"INVOKE_LAB_REPEAT": "many"}, "--repeat 'many': not allowed"),
    (["scale", "--repeat", "99999999", "--dry-run", "--backend", "local"], {},
     "= 700,000,000 trials, over the 200,000 a run may hold"),
    (["ipc", "--channels", "carrier_pigeon"], {}, "--channels 'carrier_pigeon': unknown"),
    (["ipc", "--channels", "test_drop_one"], {}, "--channels 'test_drop_one': unknown"),
    (["ipc", "--sizes", "-1"], {}, "--sizes '-1': not a size"),
    (["ipc", "--ends", "2:0"], {}, "--ends '2:0': not allowed"),
    (["ipc", "--backend", "local", "--messages", "1000000", "--sizes", "1MiB",
      "--bytes-per-trial", "none"], {}, "over the trial budget"),
    (["scale", "--resume", ""], {}, "--resume '': empty"),
    (["scale", "--plan", "/nonexistent/plan.json"], {},
     "--plan /nonexistent/plan.json: not a readable"),
    (["scale", "--backend", "docker"], {}, "--backend docker: the Docker engine does not answer"),
]


@pytest.mark.parametrize("args, env, message", CASES,
                         ids=[" ".join(a + [f"{k}={v}" for k, v in e.items()]) for a, e, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written_without_an_engine(
        tmp_path, args, env, message):
    results = tmp_path / "results"
    done = invoke(*args, "--results-dir", str(results), env={**NO_ENGINE, **env})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in done.stdout + done.stderr
    assert not results.exists()


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """`invoke ipc --dry-run | head -1`: the pipe closes under the lab; it ends quietly."""
    import subprocess
    import sys
    from pathlib import Path
    invoke_bin = str(Path(sys.executable).with_name("invoke"))
    pipeline = subprocess.run(
        f"{invoke_bin} ipc --dry-run --backend local --results-dir {tmp_path / 'r'} | head -1",
        shell=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
        env={**__import__("os").environ, **NO_ENGINE}, timeout=120)
    assert pipeline.stdout.count("\n") == 1
    assert "Traceback" not in pipeline.stderr and "BrokenPipeError" not in pipeline.stderr
