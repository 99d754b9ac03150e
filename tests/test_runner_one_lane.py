"""A single host is the runner's one lane, without an engine: a fake backend, the real run
folder and runner (lab.run.runner).

- its trials run in the calling thread (where signals arrive: the local backend kills its own
  trial on Ctrl-C), in the plan's order, each record carrying the run's host name;
- a trial that raises, or whose engine stopped answering, ends the run failed with no record
  for it and no host recorded lost (the lanes side by side are tests/test_hosts_lanes.py);
- Ctrl-C records the trial in flight as interrupted, stops the run's trials by label, and a
  signal while a container is created waits until that step ends.
"""

import os
import signal
import threading

from lab import records
from lab.backends import Backend, TrialOutcome
from lab.backends.multihost import MultiHostBackend
from lab.run import folder as runfolder
from lab.run import runner
from lab.run.plan import Plan, make_point


class OneHost(Backend):
    """One host (lane None); trial `raises` raises, trial `gone` fails with its engine gone,
    trial `signal_at` sends this process SIGINT inside `uninterruptible`."""
    name = "docker"
    engine_words = "the Docker engine"

    def __init__(self, raises=None, gone=None, signal_at=None):
        super().__init__({})
        self.raises, self.gone, self.signal_at = raises, gone, signal_at
        self.count, self.lost, self.threads, self.stops, self.created = 0, False, set(), [], 0

    def image_info(self, name=None):
        return {"id": "sha256:fake", "tag": "fake", "python": "3.13"}

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        self.count += 1
        self.threads.add(threading.current_thread().name)
        if self.count == self.signal_at:
            with self.uninterruptible():
                os.kill(os.getpid(), signal.SIGINT)  # waits until the container "has its id"
                self.created += 1
        if self.count == self.raises:
            raise RuntimeError("500 Server Error: the engine said no (an APIError)")
        if self.count == self.gone:
            self.lost = True
            return TrialOutcome(None, "exited with status 137", 137, False, False, 0.1, "")
        return TrialOutcome({"ok": True, "seconds": 0.01}, None, 0, False, False, 0.02, "")

    def engine_gone(self):
        return self.lost

    def stop_all(self, run_id):
        self.stops.append(run_id)
        return 1

    def stopped_phrase(self, run_id, count):
        return f"{count} stopped"


def run_one(tmp_path, backend, host=""):
    points = [make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1, cpuset=[0],
                         quota=None, placement="spread", workers=1, start_method="fork",
                         image="x", host=host, params={"n": n}) for n in range(3)]
    plan = Plan(points, 2, 7)
    folder = runfolder.RunFolder.create(tmp_path, "scale")
    folder.write_meta({"schema": records.RECORD_SCHEMA, "run_id": folder.run_id,
                       "task": "scale", "status": "running"})
    said = []
    status = runner.execute(plan, backend, folder, "this-machine", 60, lambda point: 0.1,
                            say=said.append)
    found = records.read_records(folder.raw_path, warn=lambda *_: None)
    return status, found, folder.read_meta(), said, plan, folder


def test_one_host_runs_every_trial_in_the_calling_thread_in_the_plans_order(tmp_path):
    backend = OneHost()
    status, found, meta, said, plan, _ = run_one(tmp_path, backend)
    assert status == "complete" and meta["status"] == "complete"
    assert "failure" not in meta and "hosts_lost" not in meta
    assert [records.trial_key(r) for r in found] == [t.key for t in plan.trials]
    assert {r["host"] for r in found} == {"this-machine"} and all(r["ok"] for r in found)
    assert backend.threads == {threading.current_thread().name}
    assert not any("one machine" in line for line in said)
    assert backend.uninterruptible is not None  # lent back: a plain null context again
    with backend.uninterruptible():
        pass


def test_one_host_of_hosts_is_one_lane_named_for_its_host(tmp_path):
    class Member(OneHost):
        def boot_id(self):
            raise AssertionError("the one lane asks for no machine")

    member = Member()
    status, found, meta, said, plan, _ = run_one(tmp_path, MultiHostBackend(
        {"ssh://b": member}, {}), host="ssh://b")
    assert status == "complete" and len(found) == len(plan.trials)
    assert {r["host"] for r in found} == {"ssh://b"}
    assert member.threads == {threading.current_thread().name}


def test_one_host_whose_trial_raises_while_its_engine_answers_fails_that_trial_alone(tmp_path):
    """An API error with the engine still answering is this trial's failure, not the host's:
    the run goes on and ends with every trial recorded (the task exits 3 when a measured one
    failed; this one is round 0's)."""
    status, found, meta, said, plan, _ = run_one(tmp_path, OneHost(raises=3))
    assert status == "complete" and len(found) == len(plan.trials)
    failed = [r for r in found if not r["ok"]]
    assert len(failed) == 1 and failed[0]["error"].startswith("RuntimeError: 500")
    assert "failure" not in meta and "hosts_lost" not in meta


def test_one_host_whose_trial_raises_with_its_engine_gone_fails_the_run(tmp_path):
    class Dies(OneHost):
        def run(self, spec, *args, **kwargs):
            if self.count + 1 == 3:
                self.lost = True
            return super().run(spec, *args, **kwargs)
    status, found, meta, said, plan, _ = run_one(tmp_path, Dies(raises=3))
    assert status == "failed" and len(found) == 2 and all(r["ok"] for r in found)
    assert meta["status"] == "failed" and meta["failure"].startswith(
        "the Docker engine stopped answering (RuntimeError: 500")
    assert runner.exit_code(status) == 1


def test_one_host_whose_engine_goes_away_fails_the_run_and_records_nothing_of_it(tmp_path):
    backend = OneHost(gone=2)
    status, found, meta, said, _, _ = run_one(tmp_path, backend)
    assert status == "failed" and len(found) == 1
    assert meta["failure"].startswith("the Docker engine stopped answering (EngineGone: ")
    assert meta["failure"].endswith("start it again") and "hosts_lost" not in meta
    assert not any(records.is_cut_off(r) for r in found)
    assert backend.stops == [meta["run_id"]]  # what it still had is stopped, by the run's label


def test_ctrl_c_on_one_host_records_its_trial_in_flight_as_interrupted(tmp_path):
    backend = OneHost(signal_at=3)
    previous = signal.getsignal(signal.SIGINT)
    status, found, meta, said, plan, folder = run_one(tmp_path, backend)
    assert signal.getsignal(signal.SIGINT) == previous  # its own guard, put back
    assert status == "interrupted" and meta["status"] == "interrupted"
    assert runner.exit_code(status) == 130
    assert backend.created == 1  # the signal waited until the step it arrived in ended
    assert len(found) == 3 and [r["ok"] for r in found] == [True, True, False]
    assert found[2]["error"] == f"{records.INTERRUPTED} (SIGINT)"
    assert records.trial_key(found[2]) == plan.trials[2].key and records.is_cut_off(found[2])
    assert found[2]["host"] == "this-machine"
    assert backend.stops == [meta["run_id"]]
    assert f"\nInterrupted (SIGINT): 1 stopped; every finished trial is kept in " \
           f"{folder.raw_path}." in said
