"""The ipc channels, one entry each: every fact about a channel lives here, in one place.

Standard library only (it runs in the trial too). An entry says what a channel is built on, what
it carries (pickled objects or byte frames), whether many ends may share it, whether it is
duplex, whether it takes a bound (queue_maxsize) or a credit window instead, how the report
writes it, and what one small send roughly costs (the host's first guess of a point's duration,
before its warm-up trial has measured it), where its ends run (processes, threads,
interpreters), the Python it needs, and its machinery: how it is made, opened and closed
(lab.experiments.ipc_machinery). Adding a channel is one entry here; one built on machinery no
entry has yet also writes that Machinery (a make and an open function) in ipc_machinery.
"""

from dataclasses import dataclass, replace

from lab.experiments import ipc_machinery as m

DEFAULT_SEND_US = 10.0  # a channel without a measured cost: guessed like the slowest plain queue


@dataclass(frozen=True)
class ChannelFacts:
    name: str
    display: str              # as the tutorial (or the docs) writes it
    codec: str = "pickle"     # "pickle": objects in, objects out; "bytes": byte frames
    built_on: str = ""        # the channel whose machinery it uses ("" = itself)
    shared: bool = False      # many producers and consumers may share it (each end locks)
    duplex: bool = False      # one object carries both directions (ping-pong needs one)
    bounded: bool = False     # takes queue_maxsize: bounded under the handshake clock
    credits: bool = False     # unbounded; the producer is paced by the consumer's credits
    send_us: float = DEFAULT_SEND_US  # rough microseconds of one small send, one core each
    tutorial: bool = False    # one of the tutorial's three
    reference: bool = False   # a reference line, not a channel to choose
    ends: str = "processes"   # where its ends run: "processes", "threads" of the trial's
                              # process, or "interpreters" (each its own, in its own thread)
    min_python: tuple = ()    # the oldest Python that has it, e.g. (3, 14); () = every one
    round_trip_us: float | None = None  # a ping-pong round trip, if not two sends and two
                              # kernel wake-ups: the interpreters queue's blocking get() polls,
                              # sleeping 10 ms a try (CPython's poll, not the transfer), and a
                              # round trip measures about that (p50 10.1 ms on 3.14)
    helpers: int = 0          # processes in the middle it starts (a Manager's server)
    machinery: object = None  # how it is made, opened, closed (lab.experiments.ipc_machinery);
                              # a channel built on another one takes that one's

    @property
    def base(self):
        return self.built_on or self.name


# In the order tables and charts show them: the tutorial's three first, the unbounded queues
# beside them, then the channels beyond, the reference last.
CATALOG = {f.name: f for f in (
    ChannelFacts("pipe", "Pipe()", duplex=True, send_us=3.5, tutorial=True,
                 machinery=m.CONNECTION),
    ChannelFacts("queue", "Queue()", shared=True, bounded=True, send_us=7.5, tutorial=True,
                 machinery=m.QUEUE),
    ChannelFacts("joinable_queue", "JoinableQueue()", shared=True, bounded=True, send_us=10.0,
                 tutorial=True, machinery=m.JOINABLE_QUEUE),
    ChannelFacts("queue_unbounded", "Queue() + credits", built_on="queue", credits=True,
                 send_us=7.5),
    ChannelFacts("joinable_queue_unbounded", "JoinableQueue() + credits",
                 built_on="joinable_queue", credits=True, send_us=10.0),
    ChannelFacts("pipe_oneway", "Pipe(duplex=False)", send_us=3.5,
                 machinery=m.ONEWAY_CONNECTION),
    ChannelFacts("simple_queue", "SimpleQueue()", shared=True, send_us=4.5,
                 machinery=m.SIMPLE_QUEUE),
    ChannelFacts("pipe_bytes", "Pipe().send_bytes()", codec="bytes", duplex=True, send_us=2.5,
                 machinery=m.CONNECTION_BYTES),
    ChannelFacts("manager_queue", "Manager().Queue()", shared=True, bounded=True, send_us=55.0,
                 helpers=1, machinery=m.MANAGER_QUEUE),
    ChannelFacts("unix_socket", "socketpair(AF_UNIX)", codec="bytes", duplex=True, send_us=3.0,
                 machinery=m.UNIX_SOCKET),
    ChannelFacts("shm_ring", "shared-memory ring", codec="bytes", send_us=2.0,
                 machinery=m.SHM_RING),
    ChannelFacts("thread_queue", "queue.Queue()", shared=True, bounded=True,
                 send_us=3.0, ends="threads", machinery=m.THREAD_QUEUE),
    ChannelFacts("interpreter_queue", "interpreters.create_queue()", credits=True, send_us=3.0,
                 ends="interpreters", min_python=(3, 14), round_trip_us=10_000.0,
                 machinery=m.INTERPRETER_QUEUE),
    ChannelFacts("os_pipe", "os.pipe() (reference)", codec="bytes", send_us=2.0, reference=True,
                 machinery=m.RAW_PIPE),
)}

CHANNELS = tuple(CATALOG)
TUTORIAL_CHANNELS = tuple(n for n, f in CATALOG.items() if f.tutorial)
REFERENCE_CHANNEL = next(n for n, f in CATALOG.items() if f.reference)


def _kinds(test):
    """The machinery kinds (what a channel is built on) that pass `test`."""
    return tuple(n for n, f in CATALOG.items() if not f.built_on and test(f))


PICKLE_KINDS = _kinds(lambda f: f.codec == "pickle")
BYTE_KINDS = _kinds(lambda f: f.codec == "bytes")
QUEUE_KINDS = _kinds(lambda f: f.shared)
DUPLEX_KINDS = _kinds(lambda f: f.duplex)
BOUNDED_KINDS = _kinds(lambda f: f.bounded)


def python_refusal(name, version):
    """Why channel `name` cannot run on Python `version` ("3.13.5", or a tuple), e.g.
    "interpreter_queue needs Python 3.14 or later (...)", or None (it can, or the version is
    unknown)."""
    need = facts(name).min_python
    if not need or version is None:
        return None
    have = tuple(int(part) for part in str(version).split(".")[:2]
                 if part.isdigit()) if isinstance(version, str) else tuple(version)[:2]
    if have >= need:
        return None
    return f"{name} needs Python {'.'.join(map(str, need))} or later (concurrent.interpreters)"


def facts(name):
    """The entry of a channel (a test double's: the one it imitates; see ipc_channels), or a
    plain entry with the default costs for a name the catalog does not hold. A channel built
    on another has that one's machinery."""
    found = CATALOG.get(name) or ChannelFacts(name, name)
    if found.machinery is None and found.built_on in CATALOG:
        return replace(found, machinery=CATALOG[found.built_on].machinery)
    return found


def display(name, bound=None):
    """How a report names a channel; `bound` the queue_maxsize it ran with (0 or None:
    unbounded): `Queue(maxsize=1000)`, not `Queue()`, wherever the queue was bounded."""
    shown = facts(name).display
    if bound and shown.endswith("()"):
        return f"{shown[:-1]}maxsize={int(bound)})"
    return shown
