"""A single-producer single-consumer ring buffer over `multiprocessing.shared_memory`.

Standard library only. One process creates the segment (`Ring.create`), every end attaches by
name (`Ring.attach`), exactly one process calls `put` and exactly one calls `get`.

Layout of the segment (all offsets in bytes):

    0     head: uint64, total bytes ever written (only the producer stores it)
    64    tail: uint64, total bytes ever consumed (only the consumer stores it)
    128   data: `capacity` bytes used as a circle

The counters never wrap (2^64 bytes), so `head - tail` is the number of bytes in use, the ring is
empty when head == tail, and a position in the circle is `counter % capacity`; any capacity works.
A record is a 4-byte little-endian length then the message; both may straddle the end of the
circle and are then copied in two pieces. A message longer than `capacity - 4` can never fit and
is refused (`max_message`), at spec time by the experiment and again by `put`.

x86 only. The protocol is correct only where the CPU keeps stores in order (x86's TSO): the
consumer that sees a new head must also see the record written before it, and the producer that
sees a new tail must know the consumer's copy-out is complete. On weakly ordered CPUs (aarch64,
POWER, RISC-V) either can become visible early, and CPython offers no memory fence to forbid it,
so `refusal()` names the machine and the experiment refuses shm_ring there (a SpecError) rather
than measure a ring that can hand over a frame before its data. The alternative, per-record
sequence numbers at both ends plus a checksum that the consumer re-reads until consistent, was
not chosen: it detects a torn read only with a checksum's probability (crc32: 2^-32), it must
validate before the tail is published (or the data may already be overwritten), and a crc32 of
every record on both ends (about 2.8 GB/s here, against ~45 GB/s for the memcmp the experiment
uses to check every frame) would turn the ring's figures into checksum figures; and no weakly
ordered machine is at hand to test it on. Every frame the ipc experiment receives is still
checked (index at both ends, content), so a reordering this reasoning misses fails the trial.
"""

import os
import platform
import struct
import time
from multiprocessing import shared_memory

HEAD_INDEX = 0  # uint64 index of head in the counter view (byte 0)
TAIL_INDEX = 8  # uint64 index of tail (byte 64: its own cache line, so the ends don't share one)
DATA_OFFSET = 128
LENGTH = struct.Struct("<I")
RECORD_OVERHEAD = LENGTH.size
MIN_CAPACITY = 64
# platform.machine() of CPUs that keep stores in order (TSO), lower case.
STORE_ORDERED_MACHINES = ("x86_64", "amd64", "x64", "i386", "i486", "i586", "i686", "x86")

# Waiting: a few busy re-checks (the other end is usually microseconds away), then give the CPU
# away with sched_yield (both ends may share one CPU: spinning there only delays the other end),
# then sleep in short naps, checking the deadline and that the parent still lives. The naps also
# matter on one CPU: CFS may hand the CPU straight back to a task that yields while it is behind
# in virtual runtime, a sleeping task it cannot.
SPINS_BEFORE_YIELD = 64
YIELDS_BEFORE_SLEEP = 1_000
SLEEP_SECONDS = 50e-6

_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))


class RingTimeout(TimeoutError):
    """The other end made no room / sent nothing before the deadline (it died or hangs)."""


def refusal():
    """None where the ring's protocol holds (x86), else the one-line reason it is refused."""
    machine = platform.machine() or "unknown"
    if machine.lower() in STORE_ORDERED_MACHINES:
        return None
    return (f"ipc shm_ring runs on x86 only: its ring relies on x86 keeping stores in order, "
            f"which this {machine} CPU does not promise and CPython offers no fence for")


def max_message(capacity):
    """The longest message a ring of `capacity` data bytes accepts."""
    return capacity - RECORD_OVERHEAD


def segment_bytes(capacity):
    """Size of the shared-memory segment for a ring of `capacity` data bytes."""
    return DATA_OFFSET + capacity


# Memory ordering. CPython has no fences, so the protocol leans on three things:
# 1. Program order is kept: every step (a memoryview slice assignment = memcpy, a counter store
#    through a 'Q' memoryview = one aligned 8-byte store, a counter load) is a separate C call
#    made by a separate bytecode, so neither the C compiler nor the interpreter moves the data
#    copy after the head store, or the tail store before the data copy-out.
# 2. The counters are aligned 8-byte words written by one store each (memoryview item
#    assignment with native format 'Q' does a single memcpy of 8 bytes; struct '<Q' would write
#    byte by byte and could be read torn), and each counter has a single writer.
# 3. x86-64 is TSO: stores become visible in program order and loads are not reordered with
#    other loads or with later stores. So the consumer that sees the new head also sees the data
#    written before it, and the producer that sees the new tail knows the consumer has finished
#    copying that region out. On weakly ordered CPUs (aarch64) nothing in CPython guarantees
#    this: `refusal()` says so and the experiment does not run the ring there.
class Ring:
    """One attachment to a ring; see the module docstring for the protocol."""

    def __init__(self, shm, capacity, owner, deadline=None):
        if capacity < MIN_CAPACITY:
            raise ValueError(f"ring capacity {capacity} is below the minimum {MIN_CAPACITY}")
        if shm.size < segment_bytes(capacity):
            raise ValueError(f"segment {shm.name} has {shm.size} bytes, the ring needs "
                             f"{segment_bytes(capacity)}")
        self._shm = shm
        self.name = shm.name
        self.capacity = capacity
        self.owner = owner
        self.deadline = deadline  # time.monotonic() value after which a wait gives up
        self._parent = os.getppid()
        self._closed = self._unlinked = False
        self._counters = shm.buf[:DATA_OFFSET].cast("Q")
        self._data = shm.buf[DATA_OFFSET:DATA_OFFSET + capacity]
        # Each end caches its own counter (it is the only writer) and the last value it read of
        # the other end's, re-reading that only when the cached one says full / empty.
        self._head = self._counters[HEAD_INDEX]
        self._tail = self._counters[TAIL_INDEX]
        self._seen_tail = self._tail
        self._seen_head = self._head

    @classmethod
    def create(cls, capacity):
        """Create a new zeroed segment; the creator must `close()` and `unlink()` it."""
        shm = shared_memory.SharedMemory(create=True, size=segment_bytes(capacity))
        try:
            shm.buf[:DATA_OFFSET] = bytes(DATA_OFFSET)
            return cls(shm, capacity, owner=True)
        except BaseException:
            shm.close()
            shm.unlink()
            raise

    @classmethod
    def attach(cls, name, capacity, deadline=None):
        """Attach to an existing ring by segment name (no cleanup duty: the creator unlinks)."""
        try:  # 3.13+: do not hand this segment to the resource tracker a second time
            shm = shared_memory.SharedMemory(name=name, create=False, track=False)
        except TypeError:  # 3.11/3.12: attaching registers it again; the tracker keeps a set
            shm = shared_memory.SharedMemory(name=name, create=False)
        return cls(shm, capacity, owner=False, deadline=deadline)

    def _wait(self, spins):
        """Back off after `spins` failed checks; raise RingTimeout past the deadline."""
        if spins < SPINS_BEFORE_YIELD:
            return
        if spins < YIELDS_BEFORE_SLEEP:
            _yield()
            return
        time.sleep(SLEEP_SECONDS)
        if spins % 256 == 0:
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise RingTimeout(f"ring {self.name}: no progress before the deadline")
            if os.getppid() != self._parent:
                raise RingTimeout(f"ring {self.name}: the parent process is gone")

    def put(self, message):
        """Append one message (any bytes-like object); waits while the ring is full."""
        n = len(message)
        need = RECORD_OVERHEAD + n
        cap = self.capacity
        if need > cap:
            raise ValueError(f"message of {n} bytes does not fit a ring of {cap} bytes "
                             f"(at most {max_message(cap)})")
        head = self._head
        if head + need - self._seen_tail > cap:
            counters = self._counters
            spins = 0
            while True:
                tail = counters[TAIL_INDEX]
                if head + need - tail <= cap:
                    self._seen_tail = tail
                    break
                spins += 1
                self._wait(spins)
        data = self._data
        pos = head % cap
        if pos + RECORD_OVERHEAD <= cap:
            LENGTH.pack_into(data, pos, n)
        else:
            self._write(pos, LENGTH.pack(n))
        pos = (pos + RECORD_OVERHEAD) % cap
        if pos + n <= cap:
            data[pos:pos + n] = message
        else:
            self._write(pos, message)
        head += need
        self._head = head
        self._counters[HEAD_INDEX] = head  # publish: after the whole record is written

    def get(self):
        """Remove and return the oldest message as bytes; waits while the ring is empty."""
        tail = self._tail
        if self._seen_head == tail:
            counters = self._counters
            spins = 0
            while True:
                head = counters[HEAD_INDEX]
                if head != tail:
                    self._seen_head = head
                    break
                spins += 1
                self._wait(spins)
        data = self._data
        cap = self.capacity
        pos = tail % cap
        if pos + RECORD_OVERHEAD <= cap:
            n = LENGTH.unpack_from(data, pos)[0]
        else:
            n = LENGTH.unpack(self._read(pos, RECORD_OVERHEAD))[0]
        if RECORD_OVERHEAD + n > self._seen_head - tail:
            raise RuntimeError(f"ring {self.name}: record of {n} bytes runs past the head "
                               f"(corrupt ring)")
        pos = (pos + RECORD_OVERHEAD) % cap
        if pos + n <= cap:
            message = data[pos:pos + n].tobytes()
        else:
            message = self._read(pos, n)
        tail += RECORD_OVERHEAD + n
        self._tail = tail
        self._counters[TAIL_INDEX] = tail  # release: after the record has been copied out
        return message

    def _write(self, pos, message):
        """Copy `message` into the circle at `pos`, in two pieces across the end."""
        view = memoryview(message).cast("B")
        first = self.capacity - pos
        self._data[pos:] = view[:first]
        self._data[:len(view) - first] = view[first:]

    def _read(self, pos, n):
        """Copy `n` bytes out of the circle from `pos`, in two pieces across the end."""
        first = self.capacity - pos
        return self._data[pos:].tobytes() + self._data[:n - first].tobytes()

    def used_bytes(self):
        """Bytes currently in the ring (records and their length fields)."""
        return self._counters[HEAD_INDEX] - self._counters[TAIL_INDEX]

    def close(self):
        """Detach this process (release the views first, or the mapping cannot be closed)."""
        if self._closed:
            return
        self._closed = True
        self._counters.release()
        self._data.release()
        self._shm.close()

    def __del__(self):
        # An end that failed mid-trial never closed its ring: release the views before the
        # segment is collected, or SharedMemory.__del__ complains on stderr.
        try:
            self.close()
        except Exception:
            pass

    def unlink(self):
        """Remove the segment (the creator does this once, after every end has finished)."""
        if self.owner and not self._unlinked:
            self._unlinked = True
            self._shm.unlink()
