"""`invoke ipc` between threads and between interpreters, beside processes: thread_queue and
interpreter_queue measured like every channel (exact counts, every frame verified), a channel
that needs a newer Python refused in one line or left out per base with a note, and the
receive loop's checks catching a lost message inside a thread or an interpreter."""

import json
import os
import re
import time

import pytest

from lab.experiments import TrialCheckFailed, ipc
from lab.experiments.ipc_catalog import CATALOG, facts, python_refusal
from tests.conftest import PROJECT_ROOT, containers_started_by, invoke

SID = "multicore-lab-base:sid"  # Python 3.14: concurrent.interpreters
TRIXIE = "multicore-lab-base:trixie"
HOST_CPUS = len(os.sched_getaffinity(0))


def _records(folder):
    return [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def places_run(engine, trial_image, tmp_path_factory):
    """The user's command: threads, processes and interpreters side by side, on two bases."""
    if HOST_CPUS < 2:
        pytest.skip("needs 2 CPUs")
    results = tmp_path_factory.mktemp("places")
    done = invoke("ipc", "--channels", "thread_queue,queue,interpreter_queue",
                  "--base-image", f"{TRIXIE},{SID}", "--cpus", "2", "--messages", "2000",
                  "--round-trips", "20", "--sizes", "0,4KiB", "--patterns", "stream,pingpong",
                  "--end-placement", "split", "--repeat", "1", "--seed", "3",
                  "--backend", "docker", "--results-dir", str(results))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results / "latest", done


def test_threads_processes_and_interpreters_deliver_the_exact_count(places_run):
    folder, _ = places_run
    records = _records(folder)
    seen = {(r["variant"], r["python"].rsplit(".", 1)[0], r["params"]["pattern"])
            for r in records}
    assert {v for v, python, _ in seen if python == "3.13"} == {"thread_queue", "queue"}
    assert {v for v, python, _ in seen if python == "3.14"} == {
        "thread_queue", "queue", "interpreter_queue"}
    for record in records:
        assert record["ok"], (record["variant"], record["error"])
        check = record["check"]
        expected = 20 if record["params"]["pattern"] == "pingpong" else 2000
        if record["params"]["pattern"] == "stream":
            assert check["sent"] == check["received"] == check["payloads_verified"] == expected
        else:
            assert check["round_trips"] == check["echoed"] == expected
        # each end pinned to its own CPU: a thread (or an interpreter's thread) pins itself
        assert sorted(check["pins"].values()) == [0, 1]
        assert sorted(map(tuple, check["seen_affinity"].values())) == [(0,), (1,)]
        assert record["cpu_seconds"] > 0


def test_the_in_process_channels_are_named_and_the_older_python_is_a_note(places_run):
    folder, done = places_run
    assert "Sending 2000 numbers to queue.Queue(maxsize=1000) took" in done.stdout
    assert "Sending 2000 numbers to interpreters.create_queue() took" in done.stdout
    assert (f"interpreter_queue needs Python 3.14 or later (concurrent.interpreters): left "
            f"out on {TRIXIE}") in done.stdout
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["image_pythons"][SID].startswith("3.14")


def test_a_channel_of_a_newer_python_is_refused_in_one_line_on_the_default_base(engine, tmp_path):
    results = tmp_path / "results"
    time.sleep(1.05 - time.time() % 1)  # engine events have 1 s resolution
    since = int(time.time())
    done = invoke("ipc", "--channels", "interpreter_queue", "--cpus", "1",
                  "--results-dir", str(results))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --channels interpreter_queue needs Python 3.14 or later")
    assert "has Python 3.13" in lines[0] and "multicore-lab-base:sid" in lines[0]
    assert not results.exists()
    # The image's Python is asked of a throwaway container (as every run asks it); no trial ran
    started = containers_started_by(engine, done.pid, since)
    assert [e for e in started if "multicore-lab.run" in e["Actor"]["Attributes"]] == []


def test_the_trial_itself_refuses_an_interpreter_channel_on_an_older_python():
    if not python_refusal("interpreter_queue", os.sys.version_info[:2]):
        pytest.skip("this Python has concurrent.interpreters")
    with pytest.raises(ipc.SpecError, match=r"needs Python 3\.14 or later .*; this is Python 3"):
        ipc.run_trial({"variant": "interpreter_queue", "params": {"messages": 10}})


def test_seed_timing_is_the_tutorials_processes_only():
    with pytest.raises(ipc.SpecError, match="thread_queue runs the handshake clock only"):
        ipc.normalize("thread_queue", {"timing": "seed"})
    with pytest.raises(ipc.SpecError, match="one producer and one consumer"):
        ipc.normalize("interpreter_queue", {"producers": 2, "consumers": 2})


def test_a_thread_channel_that_drops_a_message_fails_its_trial():
    """The double test_drop_thread is thread_queue losing one message in its producer thread:
    the consumer thread's loop must catch the gap (and the trial end, not hang)."""
    with pytest.raises(TrialCheckFailed, match="items were lost"):
        ipc.run_trial({"variant": "test_drop_thread", "params": {"messages": 2000}})
    assert ipc.run_trial({"variant": "thread_queue", "params": {"messages": 2000}})[
        "check"]["received"] == 2000  # the control: the same channel unbroken


def test_every_channel_names_where_its_ends_run():
    assert {f.ends for f in CATALOG.values()} == {"processes", "threads", "interpreters"}
    assert facts("thread_queue").ends == "threads"
    assert facts("interpreter_queue").min_python == (3, 14)
    assert python_refusal("interpreter_queue", "3.14.0") is None
    assert python_refusal("interpreter_queue", None) is None  # unknown: the trial decides
    assert python_refusal("pipe", "3.11.2") is None


def test_an_interpreter_channel_that_drops_a_message_is_a_failed_trial(engine, trial_image,
                                                                      tmp_path):
    """The same double between two interpreters, through invoke on the 3.14 base: the failure
    crosses back from the consumer's interpreter and the trial fails rather than hangs."""
    done = invoke("ipc", "--channels", "test_drop_interpreter", "--base-image", SID,
                  "--cpus", "1", "--messages", "2000", "--patterns", "stream", "--repeat", "1",
                  "--backend", "docker", "--results-dir", str(tmp_path),
                  env={"LAB_TEST_DOUBLES": "1"})
    records = _records(tmp_path / "latest")
    assert records and all(not r["ok"] for r in records)
    assert all("items were lost" in r["error"] and r["seconds"] is None for r in records)
    assert done.returncode != 0


def test_a_channel_is_one_catalog_entry_with_its_machinery():
    """Every channel's make and open come from its entry (or the one it is built on): nothing
    about a channel is written anywhere else."""
    from lab.experiments.ipc_channels import TEST_DOUBLES
    for name in list(CATALOG) + list(TEST_DOUBLES):
        machinery = facts(TEST_DOUBLES.get(name, name)).machinery
        assert machinery is not None and callable(machinery.make) and callable(machinery.open)
    assert facts("queue_unbounded").machinery is facts("queue").machinery


# ---------------------------------------------------------------------------------------------
# --round-trips auto: sized by the channel's round-trip cost (the interpreters queue's 10 ms poll)

PINGPONG = {"messages": 1, "size_bytes": 0, "batch": 1, "producers": 1, "consumers": 1,
            "pattern": "pingpong", "timing": "handshake", "placement": "free"}


def test_auto_round_trips_follow_the_catalogs_round_trip_cost(monkeypatch):
    from dataclasses import replace
    from lab.families import ipc_budget
    polled = ipc_budget.count_for("interpreter_queue", PINGPONG, 0.2)
    seconds = ipc_budget.estimate({**PINGPONG, "messages": polled},
                                  "interpreter_queue")["seconds_estimate"]
    assert ipc_budget.LEAST_SAMPLES <= polled < ipc_budget.LEAST_COUNT and 0.2 <= seconds < 5
    assert ipc_budget.count_for("thread_queue", PINGPONG, 0.2) >= ipc_budget.LEAST_COUNT
    # the double: the same channel without its poll in the catalog gets the cheap floor
    monkeypatch.setitem(CATALOG, "interpreter_queue",
                        replace(CATALOG["interpreter_queue"], round_trip_us=None))
    assert ipc_budget.count_for("interpreter_queue", PINGPONG, 0.2) >= ipc_budget.LEAST_COUNT


def test_an_interpreter_ping_pong_sized_auto_runs_its_least_count_not_a_thousand(engine):
    """The user's command, default --round-trips auto: the dry run's estimate and the run's
    counts both follow the poll (not 1000 round trips, about 20 s a trial)."""
    flags = ["--channels", "interpreter_queue", "--patterns", "pingpong", "--cpus", "1",
             "--base-image", SID]
    env = {"INVOKE_IPC_REPEAT": "2", "INVOKE_LAB_MIN_SECONDS": "0.2"}
    dry = invoke("ipc", *flags, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    estimates = [float(s) for s in re.findall(r"~([\d.]+) s/trial", dry.stdout)]
    assert estimates and all(0.2 <= s < 5 for s in estimates), dry.stdout
    done = invoke("ipc", *flags, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = PROJECT_ROOT / re.search(r"results in (results/\S+)", done.stdout).group(1)
    counts = [r["params"]["messages"] for r in _records(run)]
    assert counts and all(100 <= n < 1000 for n in counts), counts
    assert all(r["ok"] for r in _records(run))
    assert "ms its blocking get() sleeps between polls: CPython's poll" in (
        run / "report.md").read_text()


def test_only_a_polling_channels_round_trip_is_said_to_be_the_poll():
    import pandas as pd
    from lab.analysis.ipc_headlines import polled_round_trips
    table = pd.DataFrame([
        {"variant": v, "channel": v, "cpus": 2, "param.pattern": pattern, "p50_us": p50}
        for v, pattern, p50 in [("interpreter_queue", "pingpong", 10_100.0),
                                ("thread_queue", "pingpong", 40.0),
                                ("interpreter_queue", "stream", float("nan"))]])
    (said,) = polled_round_trips(table)
    assert said.startswith("interpreter_queue, 2 CPUs: a ping-pong round trip takes 10.1 ms")
