"""Cold build times: the offline base (debootstrap) and the trial image on it.

    .venv/bin/python -m benchmarks.build_times [--suite trixie]

Builds into throwaway tags (multicore-lab-bench-base:<suite>, no cache) so the lab's own images
stay as they are, prints both times, then removes the throwaway images.
"""

import argparse
import time

import docker

from lab.backends import image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="trixie")
    args = parser.parse_args()
    client = docker.from_env()
    repository = "multicore-lab-bench-base"
    base_seconds = image.build_offline_base(client, args.suite, repository=repository,
                                            say=lambda *_: None)
    base = f"{repository}:{args.suite}"
    started = time.perf_counter()
    built = image.ensure_image(client, base, rebuild=True, say=lambda *_: None)
    image_seconds = time.perf_counter() - started
    print(f"offline base {base} (debootstrap, cold): {base_seconds:.1f} s")
    print(f"trial image on it (no cache):           {image_seconds:.1f} s, Python {built.python}")
    client.images.remove(built.id, force=True)
    client.images.remove(base, force=True)


if __name__ == "__main__":
    main()
