"""The run folder: results/<run-id>/ with meta.json, raw.jsonl, summary.csv, charts, report.

raw.jsonl is append-only: each record is written in one piece, flushed and fsynced as its trial
ends, so a crash or Ctrl-C loses at most the trial in flight, and a failed write (a full disk)
is cut back so it never leaves half a line. meta.json is replaced atomically; a small reserve file
keeps room for the last meta.json update when the disk fills during a run.
"""

import errno
import fcntl
import json
import os
import secrets
import time
from pathlib import Path

from lab import records

META = "meta.json"
RAW = "raw.jsonl"
PLAN = "plan.json"
LOCK = ".lock"        # held (flock) by the process running the run
RESERVE = ".reserve"  # released to write the final meta.json on a full disk
RESERVE_BYTES = 32 * 1024


class RunFolderError(RuntimeError):
    pass


def new_run_id(task, now=None):
    """UTC time first, so ids sort by time; a short random tag keeps two runs in a second apart."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{task}-{secrets.token_hex(2)}"


def check_writable(results_dir):
    """Refuse before anything runs when the results folder cannot take a run."""
    results_dir = Path(results_dir)
    probe = results_dir if results_dir.exists() else results_dir.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"results folder {results_dir} is not writable; "
                             f"pass --results-dir a folder you can write")


def is_disk_full(error):
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def write_json_atomic(path, data):
    """Write `path` whole or not at all: a temporary file, fsynced, then renamed over it."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            temporary.unlink()  # a half-written temporary must not keep the space it took
        except OSError:
            pass
        raise


def append_line(path, line):
    """Append `line` (one JSON record and its newline) so that it is there whole or not at all.

    One os.write of the whole line on an O_APPEND descriptor; on any error (ENOSPC, EIO, a short
    write) the file is cut back to its size before, so a reader never meets half a record. A file
    whose last line was left unterminated by a crash gets a newline first: the new record then
    stands on its own line and the damaged one is reported and skipped by read_records."""
    data = line.encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            while written < len(data):  # a short write: finish it, or fail and cut back below
                more = os.write(fd, data[written:])
                if more <= 0:
                    raise OSError(errno.EIO, "short write", str(path))
                written += more
            os.fsync(fd)
        except BaseException as error:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            if isinstance(error, OSError) and not error.filename:
                raise OSError(error.errno, error.strerror, str(path)) from error
            raise
    finally:
        os.close(fd)


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)
        self.run_id = self.path.name
        self._lock = None

    @classmethod
    def create(cls, results_dir, task):
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / new_run_id(task)
        path.mkdir()
        folder = cls(path)
        try:
            folder.lock()
        except RunFolderError:  # refused before anything is in it: no empty run left behind
            (path / LOCK).unlink(missing_ok=True)
            path.rmdir()
            raise
        folder.point_latest()
        return folder

    def point_latest(self):
        """results/latest -> this run (a relative symlink, replaced atomically)."""
        link = self.path.parent / "latest"
        temporary = self.path.parent / f".latest-{self.run_id}"
        if temporary.is_symlink():
            temporary.unlink()
        temporary.symlink_to(self.run_id)
        os.replace(temporary, link)

    @property
    def meta_path(self):
        return self.path / META

    @property
    def raw_path(self):
        return self.path / RAW

    @property
    def plan_path(self):
        return self.path / PLAN

    def lock(self):
        """Hold the run folder for this process (released when it exits, however it exits);
        refuse when another process holds it: two processes must never append to one run."""
        try:
            handle = open(self.path / LOCK, "a+")
        except OSError as error:
            raise RunFolderError(f"run folder {self.path} is not writable "
                                 f"({error.strerror or error}); the run cannot go on there") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderError(f"run {self.run_id} is being run right now by {holder}; "
                                 f"wait for it to end or stop it first") from None
        except OSError as error:  # no flock on this filesystem (e.g. Lustre without -o flock)
            handle.close()
            raise RunFolderError(f"the results folder {self.path.parent} is on a filesystem "
                                 f"without file locks (flock: {error.strerror or error}), which "
                                 f"keep two processes from writing one run; pass --results-dir "
                                 f"a folder on a filesystem with locks (a local disk)") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
        except OSError:
            pass  # the lock is what matters, not the note of who holds it
        self._lock = handle

    def unlock(self):
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the flock
            self._lock = None

    def reserve_space(self, size=RESERVE_BYTES):
        """Set room aside for the final meta.json (best effort: skipped when there is none)."""
        try:
            with open(self.path / RESERVE, "wb") as handle:
                handle.write(b"\0" * size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self.release_reserve()

    def release_reserve(self):
        try:
            (self.path / RESERVE).unlink()
            return True
        except FileNotFoundError:
            return False

    def read_meta(self):
        """meta.json as a dict, validated (records.Meta)."""
        return records.read_meta(self.meta_path)

    def meta_for_reading(self, say=None):
        """meta.json for a report or a comparison: {} when it is missing or damaged (said to
        `say`), since what was measured is in raw.jsonl, which they rest on."""
        if not self.meta_path.exists():
            return {}
        try:
            return self.read_meta()
        except records.RecordsError as why:
            if say is not None:
                say(f"{why}: left aside; what follows rests on raw.jsonl alone")
            return {}

    def write_meta(self, meta):
        try:
            write_json_atomic(self.meta_path, meta)
        except OSError as error:
            if not (is_disk_full(error) and self.release_reserve()):
                raise
            write_json_atomic(self.meta_path, meta)  # the reserve's room is enough for it

    def update_meta(self, **changes):
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    def append(self, record):
        """Append one trial record (validated: records.TrialRecord) and make it durable before
        the next trial starts."""
        record = records.validate_record(record)
        append_line(self.raw_path, json.dumps(record, sort_keys=True, default=str) + "\n")


def resolve(results_dir, run):
    """A run folder from 'latest', a run id, or a path."""
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = Path(results_dir) / run
    if not (candidate / RAW).exists() and not (candidate / META).exists():
        raise RunFolderError(f"no run at {run!r}: give a run id under {results_dir}, "
                             f"'latest', or a run folder's path")
    return RunFolder(candidate.resolve())
