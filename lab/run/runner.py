"""Drives a plan through a backend: one trial at a time in each lane (a single host is one
lane; several hosts run side by side), each record appended as it ends.

Ctrl-C or SIGTERM stops the run's trial in flight (its containers, by the run's label), records it
as failed ("interrupted ..."), marks the run interrupted; a second signal does not cut that
cleanup short, and a signal that arrives while a record is being written waits until it is
written. The Docker engine going away or the disk filling up ends the run as failed, with the
reason in one line. Finished records are never touched; lab.run.carry says how to resume.
"""

import contextlib
import signal
import threading
import time
from contextlib import contextmanager

from lab import records
from lab.backends import TrialOutcome, trial_tags
from lab.run import folder as runfolder
from lab.run.options import trial_start_method
from lab.run.progress import Progress


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during the run."""


class EngineGone(RuntimeError):
    """The backend's engine stopped answering while a trial ran."""


class SignalGuard:
    """SIGINT and SIGTERM become `Interrupted`, once: later signals are ignored while the run
    cleans up, and inside `shielded()` a signal waits for the end of the block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    NAMES = tuple(s.name for s in SIGNALS)

    def __init__(self):
        self.fired = None     # the signal that ended the run, or "closing"
        self.pending = None   # a signal that arrived inside a shielded block
        self.depth = 0
        self.previous = {}

    def install(self):
        try:
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: signals cannot be caught here
            self.previous = {}

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def closing(self, name="closing"):
        """From now on signals are ignored (the run is being cleaned up)."""
        self.fired = self.fired or name

    def _handle(self, signum, _frame):
        name = signal.Signals(signum).name
        if self.fired:
            return
        if self.depth:
            self.pending = self.pending or name
            return
        self.fired = name
        raise Interrupted(name)

    @contextmanager
    def shielded(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending and not self.fired:
            self.fired, self.pending = self.pending, None
            raise Interrupted(self.fired)


def trial_spec(point, time_limit_s=None, params=None):
    """What reaches the trial (one JSON argument): the point (with `params`, where the run sized
    them: lab.run.sizing), and the host's time limit so the trial can give up with a reason
    before it is killed."""
    return {"experiment": point.experiment, "variant": point.variant,
            "params": point.params_dict if params is None else params, "workers": point.workers,
            "start_method": trial_start_method(point.start_method),
            "expect_affinity": list(point.cpuset),
            "time_limit_s": time_limit_s}


def make_record(run_id, trial, outcome, backend, host, params=None):
    """The trial record (lab.records.TrialRecord): what the trial said plus what only the host
    knows; `params` are what the trial ran with (the point's, unless the run sized them)."""
    point = trial.point
    result = outcome.result or {}
    image = backend.image_info(point.image or None)
    seconds = result.get("seconds") if outcome.error is None else None
    return {
        "schema": records.RECORD_SCHEMA, "run_id": run_id, "point_id": point.point_id,
        "experiment": point.experiment, "variant": point.variant, "backend": backend.name,
        "host": host, "image": image.get("id"), "image_tag": image.get("tag"),
        "python": result.get("python") or image.get("python"),
        "start_method": point.start_method, "limit": point.limit, "cpus": point.cpus,
        "cpuset": ",".join(str(c) for c in point.cpuset), "quota": point.quota,
        "placement": point.placement, "workers": point.workers,
        "params": point.params_dict if params is None else params,
        "round": trial.round, "repeat": trial.repeat, "warmup": trial.warmup,
        "ok": outcome.error is None, "error": outcome.error,
        "seconds": seconds, "cpu_seconds": result.get("cpu_seconds"),
        "metrics": result.get("metrics") or {}, "check": result.get("check") or {},
        "seen": result.get("seen"),
        "throttled_seconds": result.get("throttled_seconds"),
        "nr_throttled": result.get("nr_throttled"),
        "cgroup_cpu_seconds": result.get("cgroup_cpu_seconds"),
        "steal_seconds": result.get("steal_seconds"),
        "host_seconds": outcome.host_seconds,
        "overhead_seconds": (outcome.host_seconds - seconds) if seconds is not None else None,
        "exit_code": outcome.exit_code, "oom_killed": outcome.oom_killed,
        "timed_out": outcome.timed_out,
        "stderr_tail": outcome.stderr_tail if outcome.error else "",
        "started_at": result.get("started_at"),
        **outcome.extra,  # what only the backend knows (e.g. a cluster's node, job and step)
    }


def execute(plan, backend, folder, host_name, time_limit_s, estimate, say=print, done=(),
            guard=None, label=None, sizing=None):
    """Run every trial of `plan` not in `done` (keys of finished trials), then record the run's
    status (and why it failed) in meta.json. Returns the status: complete, interrupted, failed.

    `estimate(point)`: seconds of one trial, for the time left; `label(point)`: the point in
    words. `guard`: a SignalGuard the caller installed earlier (lab.run.carry does, so that a
    signal while the run folder is being set up is caught too); by default execute installs its
    own. A single host is one lane (`_Lanes`)."""
    done = set(done)
    pending = [t for t in plan.trials if t.key not in done]
    progress = Progress(pending, estimate, label or (lambda point: point.point_id), say,
                        plan.rounds)
    own_guard = guard is None
    guard = guard or SignalGuard()
    lanes = _Lanes(pending, backend, folder, host_name, time_limit_s, progress, say, guard,
                   sizing)
    if own_guard:
        guard.install()
    status, failure = "complete", None
    try:
        with progress:
            lanes.run()
    except (Interrupted, KeyboardInterrupt) as why:
        guard.closing("SIGINT")  # a second Ctrl-C must not cut the cleanup
        status = "interrupted"
        reason = str(why) or "SIGINT"
        stopped = lanes.halt(say, interrupted=True)
        kept = lanes.record_cut_off(f"{records.INTERRUPTED} ({reason})")
        say(f"\nInterrupted ({reason}): {stopped}; every finished trial is kept in "
            f"{folder.raw_path}{kept}.")
    except Exception as error:  # noqa: BLE001 (the engine went away, the disk filled up ...)
        guard.closing()
        status = "failed"
        failure = _reason(error, lanes.alone)
        lanes.halt(lambda *_: None, interrupted=False)
        say(f"\nRun failed: {failure}.\nEvery finished trial is kept in {folder.raw_path}.")
    finally:
        guard.closing()
        lost = lanes.lost
        if lost and status == "complete":
            status = "failed"
            failure = "; ".join(f"{backend.host_words(lane)}: {why}" for lane, why in lost.items())
            say(f"\nRun failed for {len(lost)} host(s): {failure}. The other hosts' "
                f"trials are complete; every trial is kept in {folder.raw_path}.")
        changes = {"status": status, "finished_at": time.time()}
        if failure:
            changes["failure"] = failure
        if lost:
            changes["hosts_lost"] = {str(lane): why for lane, why in lost.items()}
        try:
            folder.update_meta(**changes)
        except Exception as error:  # noqa: BLE001 (a full disk must not crash the cleanup)
            say(f"WARNING: could not record status {status!r} in {folder.meta_path}: "
                f"{_reason(error, lanes.alone)}")
        lanes.release()
        if own_guard:
            guard.restore()
    return status


class _Stopped(Exception):
    """A lane's worker asked to create a trial after the run was stopped."""


class _Lanes:
    """The trials of a run in lanes (`Backend.lane_of`), each lane running its own trials in
    the plan's order, one at a time; lanes of one `lane_group` (hosts on one kernel) take turns.

    One lane (a single host) runs in the calling thread, where signals arrive: a trial that
    raises, or whose engine stopped answering, ends the run as failed (nothing else could go
    on). Several lanes run side by side, one worker thread per group, while the calling thread
    waits for signals; a trial that raises fails alone while its host's engine answers a ping,
    and a host whose engine does not (gone, its SSH connection ended) gets its trial in flight
    and the rest of its trials recorded failed (HOST_LOST: --resume runs them again) while the
    others carry on; the run then ends failed. Records are appended under one lock; after
    `halt` nothing starts and nothing more is recorded."""

    def __init__(self, pending, backend, folder, host_name, time_limit_s, progress, say, guard,
                 sizing):
        self.pending, self.backend, self.folder = pending, backend, folder
        self.host_name, self.time_limit_s = host_name, time_limit_s
        self.progress, self.say, self.sizing = progress, say, sizing
        self.lanes = list(dict.fromkeys(backend.lane_of(t.point) for t in pending)) or [None]
        # one lane runs exactly as a single host ever did: its own backend stops its trials and
        # says why the run failed
        self.alone = backend.on_lane(self.lanes[0]) if len(self.lanes) == 1 else None
        # in the calling thread a signal waits while a container is created or a record is
        # written; worker threads never see signals
        self.shield = guard.shielded if self.alone is not None else contextlib.nullcontext
        self.lock = threading.Lock()      # appends, progress, and the decision to stop
        self.creating = threading.Lock()  # held while a container is created: stop waits for its id
        self.stop = threading.Event()
        self.count, self.fatal, self.lost, self.inflight = 0, None, {}, {}
        self.waiting = list(pending)      # not started yet (the time left)
        self.threads = []
        self.groups = {}  # lanes of one machine take turns; the one lane asks nothing more
        if self.alone is not None:
            self.groups[self.lanes[0]] = self.lanes
        else:
            for lane in self.lanes:
                self.groups.setdefault(backend.lane_group(lane), []).append(lane)
        for group in self.groups.values():
            if len(group) > 1:
                say(f"{' and '.join(backend.host_words(lane) for lane in group)} are one "
                    f"machine (one kernel): their trials take turns in one lane, never side by "
                    f"side")
        for lane in self.lanes:
            backend.on_lane(lane).uninterruptible = self.uninterruptible

    @contextmanager
    def uninterruptible(self):
        """e.g. creating a container: a stop (or a signal) waits until its id is known."""
        with self.shield(), self.creating:
            if self.stop.is_set():
                raise _Stopped()
            yield

    def run(self):
        if self.alone is not None:
            self.work(next(iter(self.groups)))
            return
        self.threads = [threading.Thread(target=self.guarded, args=(group,),
                                         name=f"lane-{index}", daemon=True)
                        for index, group in enumerate(self.groups)]
        for thread in self.threads:
            thread.start()
        while any(thread.is_alive() for thread in self.threads):
            for thread in self.threads:
                thread.join(0.2)  # the main thread waits here; signals reach it
        if self.fatal is not None:
            raise self.fatal

    def guarded(self, group):
        try:
            self.work(group)
        except BaseException as error:  # noqa: BLE001 (a full disk ends the whole run)
            self.fatal = self.fatal or error
            self.stop.set()

    def work(self, group):
        """The trials of the lanes in `group`, one at a time."""
        backend = self.backend
        trials = [t for t in self.pending if backend.lane_of(t.point) in self.groups[group]]
        for position, trial in enumerate(trials):
            lane = backend.lane_of(trial.point)
            if lane in self.lost:
                continue
            member, host = backend.on_lane(lane), backend.host_of(lane, self.host_name)
            with self.shield(), self.lock:
                if self.stop.is_set():
                    return
                self.count += 1
                index = self.count
                self.inflight[group] = trial
                self.waiting.remove(trial)
                self.progress.started(index, trial, list(self.waiting))
            labels = trial_tags(self.folder.run_id, trial.point.point_id)
            params = self.sizing.params(trial.point) if self.sizing else None
            try:
                outcome = member.run(trial_spec(trial.point, self.time_limit_s, params),
                                     trial.point.cpuset, trial.point.quota, self.time_limit_s,
                                     labels, trial.point.image or None)
            except _Stopped:
                return
            except Interrupted:
                raise  # Ctrl-C or SIGTERM: execute records the trial in flight as cut off
            except Exception as error:  # noqa: BLE001 (the host's trouble, or this trial's)
                if self.alone is not None and member.engine_gone():
                    raise  # the one host's engine is gone: the run fails, execute says why
                if self.stop.is_set():
                    return  # stopped under it by an interruption: the main thread records it
                if member.engine_gone():
                    self.lose(lane, member, host, _left(trials[position:], lane, backend),
                              _host_reason(error, member))
                    continue
                # the engine answers: this trial failed (an API error, an image gone), not
                # its host
                outcome = TrialOutcome(None, _host_reason(error, member), None, False, False,
                                       0.0, "")
            if outcome.error and member.engine_gone():
                if self.alone is not None:
                    # killed by the engine's own shutdown: not a measurement, so no record
                    raise EngineGone(f"the engine went away during the trial ({outcome.error})")
                self.lose(lane, member, host, _left(trials[position:], lane, backend),
                          f"{member.engine_words} stopped answering ({outcome.error})")
                continue
            with self.shield(), self.lock:  # a signal now waits until the record is on disk
                if self.stop.is_set():
                    return
                record = make_record(self.folder.run_id, trial, outcome, member, host, params)
                self.folder.append(record)
                if self.sizing:
                    self.sizing.learn(trial, record)
                self.inflight.pop(group, None)
                self.progress.finished(index, trial, record, list(self.waiting))

    def lose(self, lane, member, host, trials, why):
        backend = self.backend
        reason = f"{records.HOST_LOST}: {backend.host_words(lane)} {why}"
        with self.lock:
            if self.stop.is_set():
                return
            self.lost[lane] = why
            self.inflight.pop(backend.lane_group(lane), None)
            for trial in trials:
                outcome = TrialOutcome(None, reason, None, False, False, 0.0, "")
                self.folder.append(make_record(self.folder.run_id, trial, outcome, member, host))
        self.say(f"{backend.host_words(lane)} lost ({why}): its {len(trials)} "
                 f"remaining trial(s) recorded failed; the other hosts carry on")

    def halt(self, say, interrupted):
        """Nothing starts or is recorded from now on; the run's trials are stopped (every host's
        side by side) and the lanes' threads given 30 s to end. On an interruption a record being
        written is finished and a container being created has its id (and label) first. Returns
        the stop in words."""
        if interrupted:
            with self.lock:
                self.stop.set()
            with self.creating:
                pass
        self.stop.set()
        stopped = _stop_run_trials(self.backend if self.alone is None else self.alone,
                                       self.folder, say)
        _join_all(self.threads, 30)
        return stopped

    def record_cut_off(self, reason):
        """Record each trial in flight as cut off; '' or why one could not be, in words."""
        kept = ""
        for trial in list(self.inflight.values()):
            lane = self.backend.lane_of(trial.point)
            try:
                _record_cut_off(self.folder, trial, self.backend.on_lane(lane),
                                self.backend.host_of(lane, self.host_name), reason)
            except OSError as error:
                which = "a" if self.alone is None else "the"
                kept = (f" ({which} cut-off trial could not be recorded: "
                        f"{_reason(error, self.alone)})")
        return kept

    def release(self):
        for lane in self.lanes:
            self.backend.on_lane(lane).uninterruptible = contextlib.nullcontext


def _left(trials, lane, backend):
    """The trials of `lane` among `trials` (a machine's lane holds several hosts' trials)."""
    return [t for t in trials if backend.lane_of(t.point) == lane]


def _join_all(threads, seconds):
    """Wait for every thread, `seconds` in all (a thread stuck on a dead host is left)."""
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _host_reason(error, member):
    """Why a host's trial could not run, in words (its engine gone, or what it said)."""
    text = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    if member.engine_gone():
        return f"{member.engine_words} stopped answering ({text})"
    return text


def _stop_run_trials(backend, folder, say):
    """Stop what this run still has running (the backend finds it by the run's id); one phrase
    for the user."""
    try:
        stopped = backend.stop_all(folder.run_id)
    except Exception as error:  # noqa: BLE001
        return backend.stop_failed_phrase(folder.run_id, _reason(error, backend))
    return backend.stopped_phrase(folder.run_id, stopped)


def _reason(error, backend):
    """Why the run stopped, in words a user acts on."""
    text = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    if runfolder.is_disk_full(error):
        where = f" writing {error.filename}" if getattr(error, "filename", None) else ""
        return f"the disk is full (no space left on device{where}); free some space"
    if "no space left on device" in str(error).lower():
        return f"the disk is full (no space left on device: {text})"
    if backend is not None and backend.engine_gone():
        return f"{backend.engine_words} stopped answering ({text}); start it again"
    return text


def _record_cut_off(folder, trial, backend, host_name, reason):
    outcome = TrialOutcome(None, reason, None, False, False, 0.0, "")
    folder.append(make_record(folder.run_id, trial, outcome, backend, host_name))


EXIT_TRIALS_FAILED = 3  # the run completed, but some measured trials failed (reasons in raw.jsonl)


def exit_code(status, failed_trials=0):
    """0 complete, 3 complete with failed trials, 130 interrupted, 1 failed."""
    code = {"complete": 0, "interrupted": 130}.get(status, 1)
    return EXIT_TRIALS_FAILED if code == 0 and failed_trials else code
