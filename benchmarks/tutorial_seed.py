"""Does `--timing seed` measure what the tutorial measured? The tutorial's own programs beside
the lab's seed-timed trials, in the trial image, pinned to the same CPUs.

    .venv/bin/python -m benchmarks.tutorial_seed [--repeat 5] [--counts 100000,1000000]
                                                 [--channels queue,joinable_queue,pipe]

Without --counts, INVOKE_IPC_MESSAGES (the ipc task's size knob) gives the counts when it holds
numbers (`INVOKE_IPC_MESSAGES=10000` for a quick look); else 100000,1000000.

For every channel and count it runs, alternately (interleaved, so drift hits both alike), a
plain program written the tutorial's way (its multiprocessing-queue / joinablequeue / pipe
programs: an unbounded channel, one reader process, the clock from right after start() to the
end the tutorial waits for; passed with `python3 -c`) and the lab's trial
(`python3 -m lab.experiments '<spec>'`, timing=seed). Each runs in its own container, locked down
like the lab's (no network, read-only root with a /tmp tmpfs, every capability dropped, uid
10001, shm 256m) and removed afterwards. Prints both medians and the ratio lab / tutorial.
"""

import argparse
import json
import os
import re
import statistics

import docker

BASE_IMAGE = "multicore-lab-base:trixie"
CPUSET = [0, 1]
CHANNEL_NAMES = {"queue": "Queue()", "joinable_queue": "JoinableQueue()", "pipe": "Pipe()"}
AGREEMENT = 0.15  # the lab's seed timing should be within 15% of the tutorial's programs

# The tutorial's programs (seed/: multiprocessing-queue.py, -joinablequeue.py, -pipe.py) for
# one count, unchanged but for printing the seconds as JSON. fork, as the lab's trials use it.
TUTORIAL_PROGRAM = r'''
import json, sys, time
import multiprocessing
from multiprocessing import Process, Queue, JoinableQueue, Pipe


def queue_reader(queue):
    while True:
        msg = queue.get()
        if (msg == 'DONE'):
            break


def queue_writer(count, queue):
    for ii in range(0, count):
        queue.put(ii)
    queue.put('DONE')


def joinable_reader(queue):
    while True:
        msg = queue.get()
        queue.task_done()


def joinable_writer(count, queue):
    for ii in range(0, count):
        queue.put(ii)


def pipe_reader(pipe):
    p_output, p_input = pipe
    p_input.close()
    while True:
        msg = p_output.recv()
        if msg == 'DONE':
            break


def pipe_writer(count, p_input):
    for ii in range(0, count):
        p_input.send(ii)
    p_input.send('DONE')


def run_queue(count):
    pqueue = Queue()
    reader_p = Process(target=queue_reader, args=((pqueue),))
    reader_p.daemon = True
    reader_p.start()
    _start = time.time()
    queue_writer(count, pqueue)
    reader_p.join()
    return time.time() - _start


def run_joinable_queue(count):
    jqueue = JoinableQueue()
    reader_p = Process(target=joinable_reader, args=((jqueue),))
    reader_p.daemon = True
    reader_p.start()
    _start = time.time()
    joinable_writer(count, jqueue)
    jqueue.join()
    return time.time() - _start


def run_pipe(count):
    p_output, p_input = Pipe()
    reader_p = Process(target=pipe_reader, args=((p_output, p_input),))
    reader_p.daemon = True
    reader_p.start()
    p_output.close()
    _start = time.time()
    pipe_writer(count, p_input)
    p_input.close()
    reader_p.join()
    return time.time() - _start


if __name__ == '__main__':
    multiprocessing.set_start_method('fork')
    channel, count = sys.argv[1], int(sys.argv[2])
    print(json.dumps({"seconds": globals()['run_' + channel](count)}), flush=True)
'''


def lab_spec(channel, count):
    return {"experiment": "ipc", "variant": channel,
            "params": {"messages": count, "timing": "seed", "pattern": "stream"},
            "workers": 2, "start_method": "fork", "expect_affinity": CPUSET}


def trial_image(client):
    """The lab's trial image for BASE_IMAGE (built offline if missing)."""
    try:
        from lab.backends.image import ensure_image
    except ImportError:  # before the host side moved into lab/backends
        from lab.image import ensure_image
    return ensure_image(client, BASE_IMAGE, say=lambda *_: None)


def run_locked_down(client, image_id, entrypoint, command, timeout_s=600):
    """Run one container as the lab runs a trial; returns its last stdout line as JSON."""
    container = client.containers.create(
        image_id, entrypoint=entrypoint, command=command, detach=True,
        cpuset_cpus=",".join(map(str, CPUSET)), network_mode="none", read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], user="10001:10001", shm_size="256m",
        mem_limit="1g", memswap_limit="1g", pids_limit=256)
    try:
        container.start()
        status = container.wait(timeout=timeout_s)
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        if status.get("StatusCode") != 0 or not stdout.strip():
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
            raise RuntimeError(f"{command}: exit {status.get('StatusCode')}: {stderr[-500:]}")
        return json.loads(stdout.strip().splitlines()[-1])
    finally:
        container.remove(force=True)


def tutorial_seconds(client, image_id, channel, count):
    return run_locked_down(client, image_id, ["python3", "-c", TUTORIAL_PROGRAM],
                           [channel, str(count)])["seconds"]


def lab_seconds(client, image_id, channel, count):
    result = run_locked_down(client, image_id, ["python3", "-m", "lab.experiments"],
                             [json.dumps(lab_spec(channel, count))])
    if not result.get("ok"):
        raise RuntimeError(f"lab trial {channel} x {count} failed: {result.get('error')}")
    return result["seconds"]


def measure(client, image_id, channels, counts, repeat):
    """{(channel, count): {"tutorial": [s...], "lab": [s...]}}, interleaved per repeat; the
    order of the pair alternates so neither always runs first."""
    seconds = {(c, n): {"tutorial": [], "lab": []} for c in channels for n in counts}
    for round_index in range(repeat):
        for channel in channels:
            for count in counts:
                pair = [("tutorial", tutorial_seconds), ("lab", lab_seconds)]
                for who, run in (pair if round_index % 2 == 0 else pair[::-1]):
                    seconds[(channel, count)][who].append(run(client, image_id, channel, count))
        print(f"round {round_index + 1}/{repeat} done", flush=True)
    return seconds


def report(seconds, image):
    """Both medians, their ratio, and the median of the paired ratios (each lab run against the
    tutorial run beside it: drift of a shared machine cancels better)."""
    print(f"\nimage {image.tag} (Python {image.python}), CPUs {CPUSET}, fork, medians:")
    print(f"{'channel':<16} {'count':>8} {'tutorial s':>11} {'lab seed s':>11} "
          f"{'lab/tutorial':>12} {'paired':>7}  within {AGREEMENT:.0%}")
    for (channel, count), runs in seconds.items():
        tutorial, lab = statistics.median(runs["tutorial"]), statistics.median(runs["lab"])
        ratio = lab / tutorial
        paired = statistics.median(b / a for a, b in zip(runs["tutorial"], runs["lab"]))
        print(f"{CHANNEL_NAMES[channel]:<16} {count:>8} {tutorial:>11.3f} {lab:>11.3f} "
              f"{ratio:>12.2f} {paired:>7.2f}  {'yes' if abs(ratio - 1) <= AGREEMENT else 'NO'}"
              f"   (n={len(runs['lab'])}; tutorial {_spread(runs['tutorial'])}, "
              f"lab {_spread(runs['lab'])})")


def _spread(values):
    return f"{min(values):.3f}-{max(values):.3f}"


def default_counts():
    """The ipc task's size knob when it names counts (not `auto`): one knob sizes both."""
    knob = os.environ.get("INVOKE_IPC_MESSAGES", "").replace(" ", "")
    return knob if re.fullmatch(r"\d+(,\d+)*", knob) else "100000,1000000"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--counts", default=default_counts())
    parser.add_argument("--channels", default="queue,joinable_queue,pipe")
    args = parser.parse_args()
    channels = [c for c in args.channels.split(",") if c]
    unknown = sorted(set(channels) - set(CHANNEL_NAMES))
    if unknown:
        parser.error(f"unknown channels {', '.join(unknown)}; known: {', '.join(CHANNEL_NAMES)}")
    counts = [int(n) for n in args.counts.split(",") if n]
    client = docker.from_env()
    image = trial_image(client)
    report(measure(client, image.id, channels, counts, args.repeat), image)


if __name__ == "__main__":
    main()
