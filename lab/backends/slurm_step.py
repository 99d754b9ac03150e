"""One Slurm job step: its command line (srun's flags, the nodes' Python, the environment and the
working directory, built by one function for the trials and the pre-run check alike, so the
check cannot pass where the trials fail), srun watched while it runs (job id, pending and
overrun limits), and Slurm's verdict turned into the trial's outcome.

When the step started is never read from the wording of srun's log: it is the trial's own
stamp (`started_at`, taken as the trial's interpreter starts), else Slurm's own record of the
job (`scontrol show job`: StartTime, whole seconds). srun -v's launch line only fills in the
node and step id of a trial that said nothing.
"""

import json
import subprocess
import threading
import time
from dataclasses import dataclass

from lab.backends import STDERR_TAIL_CHARS, BackendUnavailable, outcome_from, point_of, run_of
from lab.backends.slurm_commands import (CANCELLED_LINE, DUE_TO, JOB_LINE, JOB_PREFIX,
                                         LAUNCH_LINE, VERDICTS, command, show,
                                         time_limit_minutes, to_int, trial_stderr)

SLURM_GRACE_S = 180                # past Slurm's own limit, the host cancels a step itself


@dataclass
class StepCommand:
    """What srun is started with: its argv, the environment it exports to the step, and the
    folder it starts in (also the step's --chdir)."""
    argv: list
    env: dict
    cwd: str


class _Step:
    """An srun process and what its stderr said, read as it comes (job id, launch, node)."""

    def __init__(self, step):
        self.submitted = time.time()
        self.job_id = None
        self.step_id = None
        self.node = None
        self.started = None         # epoch seconds the job started, from Slurm's record
        self.queued = False
        self.stdout, self.stderr = [], []
        self.process = subprocess.Popen(step.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=step.env,
                                        cwd=step.cwd,
                                        start_new_session=True)  # Ctrl-C reaches the lab only
        self.readers = [threading.Thread(target=self._read_stdout, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self):
        for line in self.process.stdout:
            self.stdout.append(line)

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr.append(line)
            job = JOB_LINE.match(line)
            if job and self.job_id is None:
                self.job_id = job.group(1)
            if "queued and waiting for resources" in line:
                self.queued = True
            launch = LAUNCH_LINE.match(line)  # a hint only: never the step's start
            if launch and self.node is None:
                self.job_id, self.step_id, self.node = launch.groups()

    def wait(self, timeout):
        try:
            self.process.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def finish(self, timeout=None):
        self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return "".join(self.stdout), "".join(self.stderr)


class SlurmSteps:
    """The step half of SlurmBackend: needs its partition, python, per_node, lane, code_dir,
    env (minimal_env), user, pending_limit_s, and cpus()."""

    # --- the command line of a step ----------------------------------------------------------

    def step_command(self, job_name, count, time_limit_s, python_args, siblings=False,
                     node=None):
        """The one builder of a step's command: `srun <flags> <python> <python_args>`, run from
        the staged code's (absolute) folder with the step's environment: the user's, without
        the lab's venv, PYTHONPATH the staged code. `python` is found on the node through that
        PATH, for the pre-run check and the trials alike."""
        if self.code_dir is None:
            raise RuntimeError("the trial code is not staged yet (stage() first)")
        code_dir = str(self.code_dir)
        argv = ["srun", f"--partition={self.partition}", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={count}", "--cpu-bind=cores", "--exact",
                f"--job-name={job_name}", f"--time={time_limit_minutes(time_limit_s)}",
                "--kill-on-bad-exit=1", "--verbose", f"--chdir={code_dir}"]
        if not siblings:  # spread: one CPU per core, never an SMT sibling
            argv.insert(6, "--threads-per-core=1")
        if self.per_node == 1:  # the node is the trial's alone; the step still gets N cores
            argv.insert(2, "--exclusive")
        elif node:  # the node this trial was dealt (slurm_nodes.NodeDealer)
            argv.insert(2, f"--nodelist={node}")
        return StepCommand([*argv, self.python, *python_args],
                           {**self.env, "PYTHONPATH": code_dir}, code_dir)

    # --- one trial ---------------------------------------------------------------------------

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        if quota is not None:
            raise BackendUnavailable("the slurm backend cannot apply a CPU quota; use "
                                     "--backend docker", hint="")
        if self.code_dir is None:
            self.stage(lambda *_: None)
        run_id = run_of(labels, "adhoc")
        if run_id in ("adhoc", "calibration"):  # no run id yet: this invocation's own name
            run_id = f"{run_id}-{self.token}"
        count = len(cpuset)
        # The plan's CPU ids mean nothing on a node: the trial checks the count it got, and
        # that its affinity is the step cgroup's cpuset.
        spec = {**spec, "expect_affinity": None, "expect_cpu_count": count,
                "expect_cgroup_cpuset": True}
        point = point_of(labels) or json.dumps(spec, sort_keys=True)
        node = self.dealer.take(point) if self.dealer is not None else None
        step, verdict = None, None
        try:
            # started inside the runner's guard: after a Ctrl-C (or a lane's stop) no srun
            # starts, and a signal while Popen runs waits until the step is known here
            with self.uninterruptible():
                step = _Step(self.step_command(JOB_PREFIX + run_id, count, time_limit_s,
                                               ["-m", "lab.experiments", json.dumps(spec)],
                                               siblings=self._has_siblings(cpuset), node=node))
                with self.live_lock:
                    self.live.add(step)
            verdict = self._watch(step, time_limit_s)
            stdout, stderr = step.finish(timeout=60)
        except BaseException:
            if step is not None:
                self._cancel_until_gone(step, JOB_PREFIX + run_id)
            raise
        finally:
            if step is not None:
                with self.live_lock:
                    self.live.discard(step)
            if node is not None:
                self.dealer.give_back(node)
        ended = time.time()
        return self._outcome(step, stdout, stderr, ended, time_limit_s, verdict)

    def _cancel_until_gone(self, step, job_name):
        """Cancel the step's job (by id, else by this run's name) until its srun is gone: an
        srun that had not submitted yet when first cancelled is cancelled again once it has."""
        deadline = time.perf_counter() + 30
        while True:
            self._cancel(step.job_id, job_name)
            try:
                step.finish(timeout=1)
                return
            except subprocess.TimeoutExpired:
                if time.perf_counter() > deadline:
                    step.process.kill()
                    return

    def _has_siblings(self, cpuset):
        from lab.hosts.topology import cores
        groups = cores([c for c in self.cpus() if c.id in set(cpuset)])
        return any(len(group) > 1 for group in groups)

    def _watch(self, step, time_limit_s):
        """Wait for srun; cancel a job pending past the pending limit, or a step Slurm left
        running far past its own limit. Returns the host's verdict, or None."""
        limit_s = time_limit_minutes(time_limit_s) * 60 + SLURM_GRACE_S
        while True:
            if step.started is None:
                deadline = step.submitted + self.pending_limit_s
            else:
                deadline = step.started + limit_s
            if step.wait(min(deadline - time.time(), 5.0)):
                return None
            if time.time() < deadline:
                continue
            if step.started is None:  # pending this long? Slurm's record says
                step.started = self._start_time(step.job_id)
                if step.started is not None:
                    continue
                reason = self._pending_reason(step.job_id)
                verdict = (f"PENDING: the job waited {self.pending_limit_s:g} s without starting "
                           f"(Slurm's reason: {reason}); cancelled (lab.slurm.pending_limit_s)")
            else:
                verdict = (f"TIMEOUT: still running {limit_s:g} s after it started, past Slurm's "
                           f"own limit; cancelled by the lab")
            self._cancel(step.job_id, None)
            return verdict

    def _start_time(self, job_id):
        """When Slurm started the job (its StartTime, epoch seconds), None while it pends or
        when scontrol no longer knows it."""
        try:
            jobs = show("job", job_id) if job_id else []
        except BackendUnavailable:
            return None
        fields = jobs[0] if jobs else {}
        if fields.get("JobState") in (None, "PENDING"):
            return None
        return slurm_time(fields.get("StartTime"))

    def _pending_reason(self, job_id):
        jobs = show("job", job_id) if job_id else []
        return jobs[0].get("Reason", "unknown") if jobs else "unknown"

    def _cancel(self, job_id, job_name):
        try:
            if job_id:
                command(["scancel", str(job_id)])
            elif job_name:
                command(["scancel", f"--name={job_name}", f"--user={self.user}"])
        except BackendUnavailable:
            pass

    def _job_state(self, job_id, wait_s=10.0):
        """(JobState, Reason, ExitCode) of a finished job from scontrol (no accounting needed);
        waits while it is still completing."""
        if not job_id:
            return None, None, None
        deadline = time.perf_counter() + wait_s
        while True:
            try:
                jobs = show("job", job_id)
            except BackendUnavailable:
                jobs = []
            fields = jobs[0] if jobs else {}
            state = fields.get("JobState")
            if state not in ("RUNNING", "COMPLETING", "CONFIGURING", "PENDING", "SUSPENDED") \
                    or time.perf_counter() > deadline:
                return state, fields.get("Reason"), fields.get("ExitCode")
            time.sleep(0.2)

    def _outcome(self, step, stdout, stderr, ended, time_limit_s, verdict):
        exit_code = step.process.returncode
        stamp = _stamp(stdout)
        started = stamp if stamp is not None else step.started
        if started is None and exit_code != 0:
            started = self._start_time(step.job_id)
        # the step's start (the trial's own stamp, else Slurm's) to srun's exit: no queue wait
        host_seconds = max(0.0, ended - started) if started is not None else 0.0
        outcome = outcome_from(stdout, trial_stderr(stderr), exit_code, False, False,
                               host_seconds, time_limit_s)
        result = outcome.result or {}
        slurm = result.get("slurm") or {}
        ok = outcome.error is None and exit_code == 0 and verdict is None
        state, reason, slurm_exit = ("COMPLETED", None, "0:0") if ok else \
            self._job_state(step.job_id or slurm.get("job_id"))
        cancelled = CANCELLED_LINE.search(stderr)
        if state in (None, "FAILED", "COMPLETED") and cancelled:  # scontrol forgot the job
            state = DUE_TO.get(cancelled.group(3) or "", "CANCELLED")
        if verdict is not None:
            outcome.error, outcome.result = verdict, None
            outcome.timed_out = verdict.startswith("TIMEOUT")
        elif state in VERDICTS:
            limit = time_limit_minutes(time_limit_s)
            detail = (f" (--time {limit} min: the lab's trial limit of {time_limit_s:g} s, "
                      f"rounded up to Slurm's whole minutes)" if state == "TIMEOUT" else
                      f" (Slurm's reason: {reason})" if reason and reason != "None" else "")
            outcome.error = VERDICTS[state] + detail
            outcome.result = None
            outcome.timed_out = state == "TIMEOUT"
            outcome.oom_killed = state == "OUT_OF_MEMORY"
        elif outcome.error and started is None:
            said = trial_stderr(stderr).strip().splitlines()
            outcome.error = (f"not started by Slurm: {said[-1][:300] if said else outcome.error}")
        if outcome.error and not outcome.stderr_tail:
            outcome.stderr_tail = trial_stderr(stderr)[-STDERR_TAIL_CHARS:]
        queue = max(0.0, started - step.submitted) if started is not None else None
        node = slurm.get("node") or step.node
        outcome.extra = {
            "node": node,  # the host is the run's (<partition>@<cluster>), never the node
            "slurm_job_id": to_int(slurm.get("job_id") or step.job_id, None),
            "slurm_step_id": to_int(slurm.get("step_id") or step.step_id, None),
            "slurm_partition": self.partition,
            "slurm_state": state, "slurm_reason": reason if reason not in (None, "None") else None,
            "slurm_exit_code": slurm_exit,
            "step_cgroup": slurm.get("cgroup"), "step_cpuset": slurm.get("cpuset"),
            "queue_seconds": queue, "per_node": self.per_node,
        }
        return outcome


def _stamp(stdout):
    """The trial's own `started_at` (epoch seconds) from its JSON result line, or None."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    try:
        value = json.loads(lines[-1]).get("started_at") if lines else None
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def slurm_time(text):
    """A Slurm timestamp (2026-12-06T00:04:19, the controller's local time) in epoch seconds;
    None for Unknown, None or words it cannot read."""
    try:
        return time.mktime(time.strptime(str(text), "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError, OverflowError):
        return None
