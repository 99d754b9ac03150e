"""One Slurm job step: its command line (srun's flags, the nodes' Python, the environment and the
working directory, built by one function for the trials and the pre-run check alike, so the
check cannot pass where the trials fail), srun watched while it runs (job id, launch, node,
pending and overrun limits), and Slurm's verdict turned into the trial's outcome.
"""

import json
import subprocess
import threading
import time
from dataclasses import dataclass

from lab.backends import RUN_LABEL, STDERR_TAIL_CHARS, BackendUnavailable, outcome_from
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
        self.submitted = time.perf_counter()
        self.job_id = None
        self.step_id = None
        self.node = None
        self.launched = None        # perf_counter when srun launched the step
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
            launch = LAUNCH_LINE.match(line)
            if launch and self.launched is None:
                self.launched = time.perf_counter()
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

    def step_command(self, job_name, count, time_limit_s, python_args, siblings=False):
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
        elif self._lane_node(self.lane):
            argv.insert(2, f"--nodelist={self._lane_node(self.lane)}")
        return StepCommand([*argv, self.python, *python_args],
                           {**self.env, "PYTHONPATH": code_dir}, code_dir)

    # --- one trial ---------------------------------------------------------------------------

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        if quota is not None:
            raise BackendUnavailable("the slurm backend cannot apply a CPU quota; use "
                                     "--backend docker", hint="")
        if self.code_dir is None:
            self.stage(lambda *_: None)
        run_id = (labels or {}).get(RUN_LABEL, "adhoc")
        count = len(cpuset)
        # The plan's CPU ids mean nothing on a node: the trial checks the count it got, and
        # that its affinity is the step cgroup's cpuset.
        spec = {**spec, "expect_affinity": None, "expect_cpu_count": count,
                "expect_cgroup_cpuset": True}
        step = _Step(self.step_command(JOB_PREFIX + run_id, count, time_limit_s,
                                       ["-m", "lab.experiments", json.dumps(spec)],
                                       siblings=self._has_siblings(cpuset)))
        verdict = None
        try:
            verdict = self._watch(step, time_limit_s)
            stdout, stderr = step.finish(timeout=60)
        except BaseException:
            self._cancel(step.job_id, JOB_PREFIX + run_id)
            try:
                step.finish(timeout=30)
            except subprocess.TimeoutExpired:
                step.process.kill()
            raise
        ended = time.perf_counter()
        return self._outcome(step, stdout, stderr, ended, time_limit_s, verdict)

    def _has_siblings(self, cpuset):
        from lab.hosts.topology import cores
        groups = cores([c for c in self.cpus() if c.id in set(cpuset)])
        return any(len(group) > 1 for group in groups)

    def _watch(self, step, time_limit_s):
        """Wait for srun; cancel a job pending past the pending limit, or a step Slurm left
        running far past its own limit. Returns the host's verdict, or None."""
        limit_s = time_limit_minutes(time_limit_s) * 60 + SLURM_GRACE_S
        while True:
            if step.launched is None:
                deadline = step.submitted + self.pending_limit_s
            else:
                deadline = step.launched + limit_s
            if step.wait(min(deadline - time.perf_counter(), 5.0)):
                return None
            now = time.perf_counter()
            if now < deadline:
                continue
            if step.launched is None:
                reason = self._pending_reason(step.job_id)
                verdict = (f"PENDING: the job waited {self.pending_limit_s:g} s without starting "
                           f"(Slurm's reason: {reason}); cancelled (lab.slurm.pending_limit_s)")
            else:
                verdict = (f"TIMEOUT: still running {limit_s:g} s after it started, past Slurm's "
                           f"own limit; cancelled by the lab")
            self._cancel(step.job_id, None)
            return verdict

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
        started = step.launched if step.launched is not None else ended
        host_seconds = ended - started  # the step's launch to srun's exit: queue wait left out
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
        elif outcome.error and step.launched is None:
            said = trial_stderr(stderr).strip().splitlines()
            outcome.error = (f"not started by Slurm: {said[-1][:300] if said else outcome.error}")
        if outcome.error and not outcome.stderr_tail:
            outcome.stderr_tail = trial_stderr(stderr)[-STDERR_TAIL_CHARS:]
        queue = (step.launched - step.submitted) if step.launched is not None else None
        node = slurm.get("node") or step.node
        outcome.extra = {
            **({"host": node} if node else {}), "node": node,
            "slurm_job_id": to_int(slurm.get("job_id") or step.job_id, None),
            "slurm_step_id": to_int(slurm.get("step_id") or step.step_id, None),
            "slurm_partition": self.partition,
            "slurm_state": state, "slurm_reason": reason if reason not in (None, "None") else None,
            "slurm_exit_code": slurm_exit,
            "step_cgroup": slurm.get("cgroup"), "step_cpuset": slurm.get("cpuset"),
            "queue_seconds": queue, "per_node": self.per_node,
        }
        return outcome
