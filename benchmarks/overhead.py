"""Per-trial overhead of each backend: host-observed trial time minus the timed section.

    .venv/bin/python -m benchmarks.overhead [--trials 20]

Runs `probe seen` trials (nothing timed inside) alternately on the docker and local backends,
pinned to CPU 0, and prints the median and quartiles of overhead_seconds for each, and their ratio.
"""

import argparse
import statistics

from lab import plan as plans
from lab.backends.docker import DockerBackend, connect
from lab.backends.local import LocalBackend
from lab.image import ensure_image
from lab.runner import trial_spec


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--base-image", default="multicore-lab-base:trixie")
    args = parser.parse_args()
    client = connect()
    docker = DockerBackend(client, {"memory_limit": "256m", "shm_size": "64m"})
    docker.images = {args.base_image: ensure_image(client, args.base_image)}
    local = LocalBackend({})
    point = plans.make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1,
                             cpuset=[0], quota=None, placement="spread", workers=1,
                             start_method="fork", image=args.base_image)
    overhead = {"docker": [], "local": []}
    for _ in range(args.trials):  # alternate, so drift of a shared machine hits both alike
        for name, backend in (("docker", docker), ("local", local)):
            outcome = backend.run(trial_spec(point), point.cpuset, None, 60, image=point.image)
            assert outcome.error is None, outcome.error
            overhead[name].append(outcome.host_seconds - outcome.result["seconds"])
    for name, values in overhead.items():
        q1, median, q3 = quartiles(values)
        print(f"{name:<7} overhead per trial: median {median * 1000:7.1f} ms "
              f"(IQR {q1 * 1000:.1f}-{q3 * 1000:.1f} ms, {len(values)} trials)")
    ratio = statistics.median(overhead["docker"]) / statistics.median(overhead["local"])
    print(f"docker / local: {ratio:.1f}x")


if __name__ == "__main__":
    main()
