"""`invoke ipc` on a real engine: every channel counts exactly, a broken channel fails, bad input
and over-budget points are refused before any container starts."""

import csv
import json
import os
import time

import pytest

from lab.experiments.ipc import CHANNELS
from lab.experiments.ipc_catalog import python_refusal
from tests.conftest import containers_started_by, invoke

HOST_CPUS = len(os.sched_getaffinity(0))
# The default base runs Python 3.13: `all` leaves out the channels of a newer Python, in a note.
ON_DEFAULT_BASE = [c for c in CHANNELS if not python_refusal(c, "3.13")]


def _records(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ipc_run(engine, trial_image, tmp_path_factory):
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    results_dir = tmp_path_factory.mktemp("ipc")
    done = invoke("ipc", "--cpus", "1,2", "--messages", "1000", "--sizes", "0,4KiB",
                  "--patterns", "stream", "--end-placement", "free", "--repeat", "1",
                  "--seed", "9", "--backend", "docker", "--results-dir", str(results_dir))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results_dir / "latest", done


def test_containers_carry_the_pid_of_the_lab_process_that_started_them(ipc_run, engine):
    folder, done = ipc_run
    created = containers_started_by(engine, done.pid, int(time.time()) - 3600)
    # The engine keeps only its last 256 events, so some of the run's creations may be gone;
    # those left must be this run's: the control for the bad-input checks below.
    assert created
    assert {e["Actor"]["Attributes"]["multicore-lab.run"] for e in created} == {
        folder.resolve().name}


def test_every_channel_size_and_cpu_count_delivers_the_exact_count(ipc_run):
    folder, _ = ipc_run
    records = _records(folder)
    seen = {(r["variant"], r["params"]["size_bytes"], r["cpus"]) for r in records}
    assert seen == {(c, s, n) for c in ON_DEFAULT_BASE for s in (0, 4096) for n in (1, 2)}
    for record in records:
        assert record["ok"], (record["variant"], record["error"])
        assert record["check"]["sent"] == record["check"]["received"] == 1000
        assert record["seen"]["affinity"] == list(range(record["cpus"]))
        assert record["metrics"]["messages_per_second"]["value"] > 0


def test_the_tutorials_table_and_charts_are_written(ipc_run):
    folder, done = ipc_run
    assert "Sending 1000 numbers to Pipe() took" in done.stdout
    # the handshake clock's bounded queue says its bound; the unbounded one beside it
    assert "Sending 1000 numbers to JoinableQueue(maxsize=1000) took" in done.stdout
    assert "Sending 1000 numbers to JoinableQueue() + credits took" in done.stdout
    assert (folder / "ipc_channels.png").stat().st_size > 5000
    summary = list(csv.DictReader((folder / "summary.csv").open()))
    assert len(summary) == len(ON_DEFAULT_BASE) * 2 * 2  # one row per point
    for channel in set(CHANNELS) - set(ON_DEFAULT_BASE):
        assert f"{channel} needs Python 3.14 or later" in done.stdout  # left out, said so
    names = {(row["variant"], row["param.size_bytes"]): (row["channel"], row["queue_maxsize"])
             for row in summary}
    assert names[("queue", "0")] == ("Queue(maxsize=1000)", "1000")
    assert names[("queue", "4096")][0].startswith("Queue(maxsize=")
    assert names[("queue_unbounded", "0")] == ("Queue() + credits", "0")
    assert names[("pipe", "0")] == ("Pipe()", "")


def test_latency_split_across_two_cpus_reports_percentiles(engine, trial_image, tmp_path):
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    done = invoke("ipc", "--cpus", "2", "--channels", "pipe,shm_ring", "--patterns", "pingpong",
                  "--round-trips", "300", "--end-placement", "split", "--repeat", "1",
                  "--backend", "docker", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    measured = [r for r in _records(tmp_path / "latest") if not r["warmup"]]
    assert {r["variant"] for r in measured} == {"pipe", "shm_ring"}
    for record in measured:
        metrics = record["metrics"]
        assert 0 < metrics["p50_us"]["value"] <= metrics["p99_us"]["value"]
        pins = record["check"]["pins"]
        assert sorted(pins.values()) == [0, 1]  # each end on its own CPU
    assert (tmp_path / "latest" / "ipc_latency.png").exists()


def test_a_channel_that_drops_a_message_is_a_failed_trial_not_a_number(engine, trial_image,
                                                                       tmp_path):
    done = invoke("ipc", "--cpus", "1", "--channels", "test_drop_one", "--messages", "2000",
                  "--sizes", "0", "--patterns", "stream", "--repeat", "1", "--backend", "docker",
                  "--results-dir", str(tmp_path), env={"LAB_TEST_DOUBLES": "1"})
    records = _records(tmp_path / "latest")
    assert records and all(not r["ok"] for r in records)
    assert all("check failed" in r["error"] and r["seconds"] is None for r in records)
    assert done.returncode != 0
    assert "failed" in done.stdout


BAD = [
    (["--messages", "0"], "--messages '0': not allowed"),
    (["--messages", "auto,2000000000"], "--messages '2000000000': not allowed; allowed: whole "
                                        "numbers from 1 to 1,000,000,000, or auto"),
    (["--round-trips", "5e9"], "--round-trips '5e9': not allowed; allowed: a whole number from 1"),
    (["--sizes", "-1"], "--sizes '-1': not a size"),
    (["--channels", "pipe,carrier_pigeon"], "--channels 'carrier_pigeon': unknown; allowed: pipe"),
    (["--channels", "test_drop_one"], "--channels 'test_drop_one': unknown; allowed: pipe"),
    (["--messages", "1000000", "--sizes", "1MiB", "--bytes-per-trial", "none"],
     "over the trial budget"),
    (["--ends", "2:0"], "--ends '2:0': not allowed"),
    (["--channels", "pipe", "--ends", "2:2", "--patterns", "stream"], "nothing to run"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_ipc_input_is_refused_before_any_container_starts(engine, tmp_path, args, message):
    results = tmp_path / "results"
    time.sleep(1.05 - time.time() % 1)  # engine events have 1 s resolution: start a fresh second
    since = int(time.time())
    done = invoke("ipc", "--results-dir", str(results), *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not results.exists()
    assert containers_started_by(engine, done.pid, since) == []
