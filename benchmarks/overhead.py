"""Per-trial overhead of each backend: host-observed trial time minus the timed section.

    .venv/bin/python -m benchmarks.overhead [--trials 20] [--hosts ssh://user@host[:port],...]

Runs `probe seen` trials (nothing timed inside) in turn on the docker and local backends and on
each remote host named by --hosts (a Docker engine reached over SSH: one login, its channels
reused), pinned to CPU 0, and prints the median and quartiles of overhead_seconds for each, and
their ratios to local. A remote host that lacks the trial image gets it shipped first (streamed
`docker save | docker load`), and the time that took is printed too.
"""

import argparse
import statistics

from lab.backends.docker import DockerBackend, connect, connect_host
from lab.backends.image import ensure_image
from lab.backends.local import LocalBackend
from lab.run.plan import make_point
from lab.run.runner import trial_spec


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--base-image", default="multicore-lab-base:trixie")
    parser.add_argument("--hosts", default="", help="remote hosts to measure beside local")
    args = parser.parse_args()
    config = {"memory_limit": "256m", "shm_size": "64m"}
    client = connect()
    docker = DockerBackend(client, config)
    docker.images = {args.base_image: ensure_image(client, args.base_image)}
    backends = {"docker": docker, "local": LocalBackend({})}
    for host in filter(None, args.hosts.split(",")):
        remote = DockerBackend(connect_host(host), config, host=host, source=lambda: client)
        remote.prepare_images([args.base_image])
        info = remote.images[args.base_image]
        if info.shipped_seconds is not None:
            print(f"image shipped to {host}: {info.shipped_bytes / 2**20:.1f} MiB in "
                  f"{info.shipped_seconds:.1f} s")
        backends[f"docker on {host}"] = remote
    point = make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1,
                       cpuset=[0], quota=None, placement="spread", workers=1,
                       start_method="fork", image=args.base_image)
    overhead = {name: [] for name in backends}
    for _ in range(args.trials):  # in turn, so drift of a shared machine hits all alike
        for name, backend in backends.items():
            outcome = backend.run(trial_spec(point), point.cpuset, None, 60, image=point.image)
            assert outcome.error is None, outcome.error
            overhead[name].append(outcome.host_seconds - outcome.result["seconds"])
    width = max(len(name) for name in overhead)
    for name, values in overhead.items():
        q1, median, q3 = quartiles(values)
        print(f"{name:<{width}} overhead per trial: median {median * 1000:7.1f} ms "
              f"(IQR {q1 * 1000:.1f}-{q3 * 1000:.1f} ms, {len(values)} trials)")
    local = statistics.median(overhead["local"])
    for name, values in overhead.items():
        if name != "local":
            print(f"{name} / local: {statistics.median(values) / local:.1f}x")
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
