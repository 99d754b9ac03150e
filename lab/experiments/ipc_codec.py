"""The ipc trial's codec: how items become frames and back (payload pools, index stamps, the
contents a receiver expects); lab.experiments.ipc_ends describes the frame formats and checks."""

import itertools
import random
import struct

HEADER = struct.Struct("<IIQ")  # items in the frame, producer, global index of its first item
TRAILER = struct.Struct("<Q")  # the global index of the first item again, at the frame's very end
FRAME_OVERHEAD = HEADER.size + TRAILER.size  # a byte frame's bytes beyond its items
END = None  # a producer's end of stream on the pickling channels
STOP = False  # from the consumer that saw the last END to each other consumer: stop now
SMALL_ITEM_BYTES = 8  # what a byte channel carries per item at size_bytes 0
POOL_SEED = 4_2024
POOL_MAX_DISTINCT = 7  # distinct item contents in the cycle (fewer when items are large)
POOL_BYTES = 16 << 20  # memory a producer (and a consumer) may spend on prebuilt frames
RETAIN_BYTES = 0  # frames kept for after the clock: none, every frame is checked in the loop

# Message modes: the codec and whether frames hold one item or a batch.
INT, INT_BATCH, OBJECT, OBJECT_BATCH, BYTES = range(5)


def message_mode(codec, batch):
    if codec == "bytes":
        return BYTES
    if codec == "int":
        return INT if batch == 1 else INT_BATCH
    return OBJECT if batch == 1 else OBJECT_BATCH


def pool_count(codec, batch, item_bytes):
    """How many distinct item contents the producers cycle through (bounded by POOL_BYTES)."""
    if codec == "int":
        return 1
    per_slot = item_bytes * (batch if codec == "bytes" else 1)  # byte frames are built whole
    return max(1, min(POOL_MAX_DISTINCT, POOL_BYTES // max(1, per_slot)))


def item_pool(item_bytes, count):
    """The distinct item contents, the same in every process."""
    return [random.Random(POOL_SEED + j).randbytes(item_bytes) for j in range(count)]


def frame_bytes(cfg):
    """Bytes a byte channel moves per full frame (header included); 0 for the pickling codecs."""
    if cfg["codec"] != "bytes":
        return 0
    return cfg["block_bytes"] or FRAME_OVERHEAD + cfg["batch"] * cfg["item_bytes"]


class Payloads:
    """What one producer sends, built before the clock: prebuilt frames reused in a fixed cycle.

    Frame f of a producer carries items f*batch ...; with pool_count M the frames repeat every M
    (f*batch + i == (f % M)*batch + i modulo M), so M prebuilt frames serve the whole run and only
    a byte frame's 16-byte header is written per send."""

    def __init__(self, cfg, producer):
        self.mode = message_mode(cfg["codec"], cfg["batch"])
        self.batch = cfg["batch"]
        self.producers = cfg["producers"]
        self.producer = producer
        self.item_bytes = cfg["item_bytes"]
        self.block_bytes = cfg["block_bytes"]
        self.count = cfg["pool_count"]
        self.pool = item_pool(self.item_bytes, self.count) if self.mode != INT else []
        self.slots = []
        if self.mode == OBJECT_BATCH:
            self.slots = [self._items(j * self.batch, self.batch) for j in range(self.count)]
        elif self.mode == BYTES:
            self.slots = [self._frame(j * self.batch, self.batch) for j in range(self.count)]
        self.end = self._frame(0, 0) if self.mode == BYTES else END

    def _items(self, first, count):
        return [self.pool[(first + i) % self.count] for i in range(count)]

    def _frame(self, first, count):
        """A byte frame for items first .. first+count-1 of this producer."""
        frame = bytearray(HEADER.size)
        frame += b"".join(self._items(first, count))
        if self.block_bytes:
            frame += bytes(self.block_bytes - len(frame) - TRAILER.size)
        frame += bytes(TRAILER.size)
        _stamp(frame, count, self.producer, first * self.producers + self.producer)
        return frame

    def sender(self, items):
        """(send_all(send), frames): a function that sends `items` items (no END) and returns
        (items, frames) it handed to `send`, counted as it goes; and the frames it should send."""
        P, p, k = self.producers, self.producer, self.batch
        full, rest = divmod(items, k)
        stop = p + full * k * P  # global index of the first item after the full frames
        frames = full + (1 if rest else 0)
        cycle = itertools.cycle
        if self.mode == INT:
            def send_all(send):
                sent = 0
                for g in range(p, p + items * P, P):
                    send(g)
                    sent += 1
                return sent, sent
        elif self.mode == INT_BATCH:
            batches = [list(range(p + s * P, p + min(s + k, items) * P, P))
                       for s in range(0, items, k)]

            def send_all(send):
                sent = 0
                for frame in batches:
                    send(frame)
                    sent += 1
                return sum(map(len, batches[:sent])), sent
        elif self.mode == OBJECT:
            pool = self.pool

            def send_all(send):
                sent = 0
                for message in zip(range(p, p + items * P, P), cycle(pool)):
                    send(message)
                    sent += 1
                return sent, sent
        else:
            send_all = self._frame_sender(full, rest, stop)
        return send_all, frames

    def _frame_sender(self, full, rest, stop):
        """send_all for the batched object codec and the byte codec: `full` frames of `batch`
        items cycling through the prebuilt slots, then one of `rest` items if rest."""
        P, p, k = self.producers, self.producer, self.batch
        slots = self.slots
        if self.mode == OBJECT_BATCH:
            tail = self._items(full * k, rest)

            def send_all(send):
                sent = 0
                for message in zip(range(p, stop, k * P), itertools.cycle(slots)):
                    send(message)
                    sent += 1
                if rest:
                    send((stop, tail))
                return sent * k + rest, sent + (1 if rest else 0)
            return send_all
        tail = self._frame(full * k, rest)
        pack, pack_end = HEADER.pack_into, TRAILER.pack_into
        end_at = len(slots[0]) - TRAILER.size if slots else 0

        def send_all(send):
            sent = 0
            for g0, frame in zip(range(p, stop, k * P), itertools.cycle(slots)):
                pack(frame, 0, k, p, g0)  # the channel copies the frame before returning
                pack_end(frame, end_at, g0)
                send(frame)
                sent += 1
            if rest:
                send(tail)
            return sent * k + rest, sent + (1 if rest else 0)
        return send_all

    def ping_frame(self, i):
        """The message of ping-pong round i (one item, index i)."""
        if self.mode == INT:
            return i
        if self.mode == OBJECT:
            return (i, self.pool[i % self.count])
        frame = self.slots[i % self.count]
        _stamp(frame, 1, 0, i)
        return frame


def _stamp(frame, count, producer, g0):
    """Write a byte frame's header and its trailer (the index again, at the very end)."""
    HEADER.pack_into(frame, 0, count, producer, g0)
    TRAILER.pack_into(frame, len(frame) - TRAILER.size, g0)


def frame_index(mode, message):
    """(global index of the first item, item count) of a data message."""
    if mode == INT:
        return message, 1
    if mode == INT_BATCH:
        return message[0], len(message)
    if mode == OBJECT:
        return message[0], 1
    if mode == OBJECT_BATCH:
        return message[0], len(message[1])
    count, _, first = HEADER.unpack_from(message)
    return first, count


def is_end(mode, message):
    if mode == BYTES:
        return HEADER.unpack_from(message)[0] == 0
    return message is END


class Expected:
    """What every frame must hold, rebuilt by a consumer before the clock from the same seed as
    the producers' Payloads: `pool` (item contents), `slots` (the batched object codec's item
    lists) and `bodies` (the byte codec's item bytes of each prebuilt frame, header and trailer
    left out). Frame f of any producer holds slot f % count (a last, shorter frame a prefix)."""

    def __init__(self, cfg):
        mode = message_mode(cfg["codec"], cfg["batch"])
        k, self.count = cfg["batch"], cfg["pool_count"]
        self.pool = item_pool(cfg["item_bytes"], self.count) if mode != INT else []
        self.slots = self.bodies = []
        if mode == OBJECT_BATCH:
            self.slots = [self._items(j * k, k) for j in range(self.count)]
        elif mode == BYTES:
            self.bodies = [b"".join(self._items(j * k, k)) for j in range(self.count)]

    def _items(self, first, count):
        return [self.pool[(first + i) % self.count] for i in range(count)]
