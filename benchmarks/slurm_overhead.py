"""Per-trial overhead of a Slurm job step against a pinned local process.

    .venv/bin/python -m benchmarks.slurm_overhead [--trials 20] [--partition bench]

Runs `probe seen` trials (nothing timed inside) alternately on the slurm backend (one job, one
step of 1 CPU, as `invoke scale --backend slurm` runs them) and the local backend (a process
pinned with sched_setaffinity), and prints for each the median and quartiles of
overhead_seconds (host-observed trial time minus the timed section; for slurm from the step's
launch, queue wait left out), and for slurm the whole srun (submission to exit) and the queue
wait. Needs a cluster (scripts/setup --slurm).
"""

import argparse
import statistics
import tempfile
import time

from lab.backends import RUN_LABEL
from lab.backends.local import LocalBackend
from lab.backends.slurm import SlurmBackend
from lab.run.plan import make_point
from lab.run.runner import trial_spec


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


def line(name, values):
    q1, median, q3 = quartiles(values)
    return (f"{name:<34} median {median * 1000:7.1f} ms (IQR {q1 * 1000:.1f}-{q3 * 1000:.1f} ms, "
            f"{len(values)} trials)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--partition", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcl-overhead-") as folder:
        slurm = SlurmBackend.connect({"results_dir": folder,
                                      "backend_options": {"partition": args.partition}})
        slurm.stage(lambda *_: None)
        local = LocalBackend({})
        point = make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1,
                           cpuset=[0], quota=None, placement="spread", workers=1,
                           start_method="fork", image="")
        overhead = {"slurm": [], "local": []}
        whole, queue = [], []
        for _ in range(args.trials):  # alternate, so drift of a shared machine hits both alike
            for name, backend in (("slurm", slurm), ("local", local)):
                started = time.perf_counter()
                outcome = backend.run(trial_spec(point, 60), point.cpuset, None, 60,
                                      {RUN_LABEL: "overhead"}, None)
                took = time.perf_counter() - started
                assert outcome.error is None, (outcome.error, outcome.stderr_tail)
                overhead[name].append(outcome.host_seconds - outcome.result["seconds"])
                if name == "slurm":
                    whole.append(took)
                    queue.append(outcome.extra["queue_seconds"])
    print(line("local: pinned process", overhead["local"]))
    print(line("slurm: step launch to exit", overhead["slurm"]))
    print(line("slurm: whole srun (submit to exit)", whole))
    print(line("slurm: queue wait (submit to launch)", queue))
    ratio = statistics.median(whole) / statistics.median(overhead["local"])
    print(f"whole srun / local: {ratio:.1f}x")


if __name__ == "__main__":
    main()
