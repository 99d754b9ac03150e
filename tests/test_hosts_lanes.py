"""The runner's lanes for --hosts, without an engine: fake hosts behind the real
MultiHostBackend and runner (lab.run.runner._execute_lanes), the real run folder.

- hosts on one machine (one boot id) take turns in one lane: never two trials at once;
- a trial that raises while its engine answers a ping fails alone; its host is lost (the rest
  of its trials cut off, resumable) only when the ping fails;
- Ctrl-C's stop reaches every host side by side: a host that hangs holds up none of the others.
"""

import threading
import time

from lab import records
from lab.backends import Backend, TrialOutcome
from lab.backends.multihost import MultiHostBackend
from lab.run import folder as runfolder
from lab.run import runner
from lab.run.plan import Plan, make_point


class FakeHost(Backend):
    """A host whose trials sleep a moment; `fail` (trial numbers) raise instead; `gone`
    (a trial number) makes its engine stop answering from then on."""
    name = "docker"
    engine_words = "the Docker engine"

    def __init__(self, boot, shared, fail=(), gone=None):
        super().__init__({})
        self.boot, self.shared, self.fail, self.gone = boot, shared, set(fail), gone
        self.count, self.lost = 0, False

    def boot_id(self):
        return self.boot

    def image_info(self, name=None):
        return {"id": "sha256:fake", "tag": "fake", "python": "3.13"}

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        self.count += 1
        with self.shared["lock"]:
            self.shared["now"] += 1
            self.shared["most"] = max(self.shared["most"], self.shared["now"])
        try:
            time.sleep(0.02)
            if self.count == self.gone:
                self.lost = True
            if self.lost or self.count in self.fail:
                raise RuntimeError("500 Server Error: the engine said no (an APIError)")
            return TrialOutcome({"ok": True, "seconds": 0.01}, None, 0, False, False, 0.02, "")
        finally:
            with self.shared["lock"]:
                self.shared["now"] -= 1

    def engine_gone(self):
        return self.lost


def run_fake(tmp_path, members):
    backend = MultiHostBackend(members, {})
    points = [make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1, cpuset=[0],
                         quota=None, placement="spread", workers=1, start_method="fork",
                         image="x", host=host, params={"n": n})
              for host in members for n in range(3)]
    plan = Plan(points, 2, 7)
    folder = runfolder.RunFolder.create(tmp_path, "scale")
    folder.write_meta({"schema": records.RECORD_SCHEMA, "run_id": folder.run_id,
                       "task": "scale", "status": "running"})
    said = []
    status = runner.execute(plan, backend, folder, "this-machine", 60, lambda point: 0.1,
                            say=said.append)
    found = records.read_records(folder.raw_path, warn=lambda *_: None)
    return status, found, folder.read_meta(), said, plan


def shared():
    return {"lock": threading.Lock(), "now": 0, "most": 0}


def test_hosts_on_one_machine_take_turns_and_separate_machines_run_side_by_side(tmp_path):
    one = shared()
    status, found, _, said, plan = run_fake(tmp_path / "a", {
        "local": FakeHost("boot-1", one), "ssh://b": FakeHost("boot-1", one)})
    assert status == "complete" and len(found) == len(plan.trials)
    assert one["most"] == 1  # never two trials at once
    assert any("are one machine (one kernel)" in line for line in said)
    two = shared()
    members = {"ssh://a": FakeHost("boot-1", two), "ssh://b": FakeHost("boot-2", two)}
    for member in members.values():  # slower trials, so side by side shows
        member.run = _slowly(member.run)
    status, found, _, said, _ = run_fake(tmp_path / "b", members)
    assert status == "complete" and two["most"] == 2
    assert not any("one machine" in line for line in said)


def _slowly(run):
    def slower(*args, **kwargs):
        time.sleep(0.05)
        return run(*args, **kwargs)
    return slower


def test_an_api_error_fails_that_trial_only_while_the_engine_answers(tmp_path):
    one = shared()
    status, found, meta, said, plan = run_fake(tmp_path, {
        "local": FakeHost("boot-1", one), "ssh://b": FakeHost("boot-2", one, fail={2})})
    failed = [r for r in found if not r["ok"]]
    assert len(found) == len(plan.trials)
    assert len(failed) == 1 and failed[0]["host"] == "ssh://b"
    assert "APIError" in failed[0]["error"] and not records.is_cut_off(failed[0])
    assert status == "complete" and "hosts_lost" not in meta
    assert not any(" lost " in line for line in said)


def test_a_host_is_lost_when_its_engine_fails_the_ping_and_the_others_carry_on(tmp_path):
    one = shared()
    status, found, meta, said, plan = run_fake(tmp_path, {
        "local": FakeHost("boot-1", one), "ssh://b": FakeHost("boot-1", one, gone=3)})
    far = [r for r in found if r["host"] == "ssh://b"]
    assert len(found) == len(plan.trials) and len(far) == len(plan.trials) // 2
    assert [r["ok"] for r in far] == [True, True] + [False] * (len(far) - 2)
    assert all(records.is_cut_off(r) for r in far[2:])  # --resume runs them again
    assert all(r["ok"] for r in found if r["host"] == "local")  # carried on, in the same lane
    assert status == "failed" and list(meta["hosts_lost"]) == ["ssh://b"]


def test_ctrl_c_stops_the_hosts_side_by_side():
    """A host that hangs (a frozen connection) does not hold up the stop of the others."""
    other_called = threading.Event()

    seen = {}

    class Hangs(Backend):
        def stop_all(self, run_id):
            seen["other stopped meanwhile"] = other_called.wait(10)  # sequential: never
            raise TimeoutError("no answer")

    class Answers(Backend):
        def stop_all(self, run_id):
            other_called.set()
            return 2

    backend = MultiHostBackend({"ssh://frozen": Hangs({}), "local": Answers({})}, {})
    assert backend.stop_all("run-1", wait_s=20) == 2
    assert seen == {"other stopped meanwhile": True} and backend.unanswered == []
    phrase = backend.stopped_phrase("run-1", 2)
    assert phrase.startswith("no container of this run is left on any host")

    stuck = threading.Event()

    class NeverAnswers(Backend):
        def stop_all(self, run_id):
            stuck.wait(30)
            return 0

    backend = MultiHostBackend({"ssh://frozen": NeverAnswers({}), "local": Answers({})}, {})
    try:
        assert backend.stop_all("run-2", wait_s=0.5) == 2
        assert backend.unanswered == ["ssh://frozen"]
        assert "host(s) ssh://frozen did not answer" in backend.stopped_phrase("run-2", 2)
    finally:
        stuck.set()


class _Container:
    """A container whose first wait loses its connection (as when a forwarded socket drops)."""

    def __init__(self):
        self.waits, self.killed = 0, False
        self.attrs = {"State": {"OOMKilled": False, "StartedAt": "2026-12-06T00:00:01.5Z",
                                "FinishedAt": "2026-12-06T00:00:02.25Z"}}

    def start(self):
        pass

    def wait(self, timeout):
        import requests
        self.waits += 1
        if self.waits == 1:
            raise requests.exceptions.ConnectionError("('Connection aborted.', "
                                                      "RemoteDisconnected())")
        return {"StatusCode": 0}

    def kill(self):
        self.killed = True

    def reload(self):
        pass

    def logs(self, stdout, stderr):
        return b'{"ok": true, "seconds": 0.5}\n' if stdout else b""

    def remove(self, force):
        pass


def _docker_backend(container, gone):
    from types import SimpleNamespace

    from lab.backends.docker import DockerBackend
    from lab.backends.image import ImageInfo
    client = SimpleNamespace(api=SimpleNamespace(base_url="http+docker://localhost"),
                             containers=SimpleNamespace(create=lambda *a, **k: container))
    backend = DockerBackend(client, {})
    backend.images = {"x": ImageInfo(id="sha256:x", tag="x", base="x", python="3.13",
                                     built_seconds=None)}
    backend.engine_gone = lambda: gone
    return backend


def test_a_dropped_connection_during_wait_is_waited_again_or_a_lost_host_never_a_timeout():
    import pytest

    from lab.backends.docker import HostGone
    container = _Container()
    outcome = _docker_backend(container, gone=False).run({}, [0], None, 60, {}, "x")
    assert outcome.error is None and not outcome.timed_out and not container.killed
    assert container.waits == 2  # the engine answers: the same trial waited on again
    assert outcome.extra["engine_finished_at"] - outcome.extra["engine_started_at"] == 0.75
    container = _Container()
    with pytest.raises(HostGone, match="stopped answering during the trial"):
        _docker_backend(container, gone=True).run({}, [0], None, 60, {}, "x")
    assert not container.killed
