"""Where the ends of an ipc trial run: child processes (every channel of multiprocessing and the
OS), threads of the trial's own process (thread_queue) or interpreters of it, each in its own
thread (interpreter_queue, Python 3.14+). Standard library only.

A place gives the orchestration (lab.experiments.ipc_run) the same five things, so one loop
starts, releases, hears and stops every kind of end: a barrier for every end, a results queue
that every end reports to once, a counter shared by several consumers, `start(role, args)`
(args: the end's CPU, barrier, body and its arguments; lab.experiments.ipc_ends.run_end) and
`stop(handles, graceful)`. A channel's catalog entry (`ends`) names its place.
"""

import queue
import threading
import time

from lab.experiments import stop_processes

POLL_S = 0.01  # how often a parent asks an interpreters queue (its own blocking get polls too)


def place_for(ends, context, parties):
    """The place of a trial whose channel's ends run in `ends`, for `parties` ends."""
    return {"processes": Processes, "threads": Threads,
            "interpreters": Interpreters}[ends](context, parties)


class Processes:
    """Every end its own process of `context` (fork, spawn or forkserver)."""

    def __init__(self, context, parties):
        self.context = context
        self.results = context.Queue()
        self._barrier = context.Barrier(parties)

    def barrier(self, index):
        return self._barrier  # one object, crossing into every child

    def counter(self):
        return self.context.Array("i", 2)

    def start(self, role, args):
        from lab.experiments import ipc_ends
        process = self.context.Process(target=ipc_ends.process_main,
                                       args=(self.results, role) + args,
                                       name=f"ipc-{role}", daemon=True)
        process.start()
        return process

    def stop(self, handles, graceful):
        stop_processes(handles, graceful=graceful)

    def close(self):
        self.results.close()


class _Finished:
    """A thread seen as a process by the parent's wait: exitcode None while it runs, 0 after."""

    def __init__(self, thread):
        self.thread = thread

    @property
    def exitcode(self):
        return None if self.thread.is_alive() else 0

    def join(self, timeout=None):
        self.thread.join(timeout)


class _Counter:
    """Two ints and a lock, as multiprocessing.Array("i", 2) offers them to consumer threads."""

    def __init__(self):
        self._values = [0, 0]
        self._lock = threading.Lock()

    def get_lock(self):
        return self._lock

    def __getitem__(self, index):
        return self._values[index]

    def __setitem__(self, index, value):
        self._values[index] = value


class Threads:
    """Every end a thread of the trial's process: they share one GIL (on a GIL build)."""

    def __init__(self, context, parties):
        self.results = queue.Queue()
        self._barrier = threading.Barrier(parties)

    def barrier(self, index):
        return self._barrier

    def counter(self):
        return _Counter()

    def start(self, role, args):
        from lab.experiments import ipc_ends
        thread = threading.Thread(target=ipc_ends.in_process_main,
                                  args=(self.results, role) + args,
                                  name=f"ipc-{role}", daemon=True)
        thread.start()
        return _Finished(thread)

    def stop(self, handles, graceful):
        # A thread cannot be killed: a finished trial's ends have returned; a failed trial's
        # ends are daemon threads that die with the trial's process.
        for handle in handles:
            handle.join(10.0 if graceful else 0.5)

    def close(self):
        pass


class QueueBarrier:
    """A barrier between interpreters, over interpreters queues (a threading.Barrier lives in
    one interpreter): party i puts one token in every other party's inbox and takes one from
    each of them out of its own. `abort()` sends every other party a broken token. Each party
    holds its own copy (its index), made by `for_party`."""

    def __init__(self, inboxes, index=None):
        self.inboxes = inboxes
        self.index = index

    def for_party(self, index):
        return QueueBarrier(self.inboxes, index)

    def wait(self, timeout=None):
        from concurrent.interpreters import QueueEmpty
        others = [box for i, box in enumerate(self.inboxes) if i != self.index]
        for box in others:
            box.put(True)
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in others:
            while True:
                try:
                    token = self.inboxes[self.index].get_nowait()
                    break
                except QueueEmpty:
                    if deadline is not None and time.monotonic() > deadline:
                        raise threading.BrokenBarrierError("barrier timed out") from None
                    time.sleep(POLL_S)
            if token is not True:
                raise threading.BrokenBarrierError("another end failed")

    def abort(self):
        for i, box in enumerate(self.inboxes):
            if i != self.index:
                box.put(False)


class _InterpreterResults:
    """The parent's side of the results queue: get(timeout) as queue.Queue offers it (an
    interpreters queue's own get rounds its timeout down to whole seconds)."""

    def __init__(self):
        from concurrent import interpreters
        self.queue = interpreters.create_queue()

    def put(self, report):
        self.queue.put(report)

    def get(self, timeout):
        from concurrent.interpreters import QueueEmpty
        stop = time.monotonic() + timeout
        while True:
            try:
                return self.queue.get_nowait()
            except QueueEmpty:
                if time.monotonic() >= stop:
                    raise queue.Empty from None
                time.sleep(POLL_S)


class Interpreters:
    """Every end its own interpreter (its own GIL), each run in a thread of the trial's
    process; what crosses is pickled unless shareable (the channel's own queue is)."""

    def __init__(self, context, parties):
        from concurrent import interpreters
        self._interpreters = []
        self.results = _InterpreterResults()
        self._barrier = QueueBarrier([interpreters.create_queue() for _ in range(parties)])
        self._next = 0

    def barrier(self, index):
        return self._barrier.for_party(index)

    def counter(self):
        return None  # one consumer: an interpreters channel is 1:1

    def start(self, role, args):
        from concurrent import interpreters

        from lab.experiments import ipc_ends
        interpreter = interpreters.create()
        self._interpreters.append(interpreter)
        # sys.path as the trial's (the lab's modules import there as here)
        interpreter.exec(f"import sys; sys.path[:] = {list(__import__('sys').path)!r}")
        thread = threading.Thread(
            target=interpreter.call,
            args=(ipc_ends.in_process_main, self.results.queue, role) + args,
            name=f"ipc-{role}", daemon=True)
        thread.start()
        return _Finished(thread)

    def stop(self, handles, graceful):
        for handle in handles:
            handle.join(10.0 if graceful else 0.5)
        for interpreter in self._interpreters:
            try:
                interpreter.close()
            except Exception:  # still running (a failed end that never returned)
                pass

    def close(self):
        pass

