"""The run folder: results/<run-id>/ with meta.json, raw.jsonl, summary.csv, charts, report.

raw.jsonl is append-only: each record is written, flushed and fsynced as its trial ends, so a
crash or Ctrl-C loses at most the trial in flight. meta.json is replaced atomically.
"""

import json
import os
import secrets
import time
from pathlib import Path

from lab import RECORD_SCHEMA

META = "meta.json"
RAW = "raw.jsonl"
PLAN = "plan.json"


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


def write_json_atomic(path, data):
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)
        self.run_id = self.path.name

    @classmethod
    def create(cls, results_dir, task):
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / new_run_id(task)
        path.mkdir()
        folder = cls(path)
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

    def read_meta(self):
        return json.loads(self.meta_path.read_text())

    def write_meta(self, meta):
        write_json_atomic(self.meta_path, meta)

    def update_meta(self, **changes):
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    def append(self, record):
        """Append one trial record and make it durable before the next trial starts."""
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.raw_path, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def read_records(raw_path, warn=print):
    """Every valid record of raw.jsonl; a damaged line is reported with its number and skipped,
    a record of an unknown schema is refused."""
    records = []
    raw_path = Path(raw_path)
    if not raw_path.exists():
        return records
    with open(raw_path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warn(f"{raw_path}:{number}: damaged line (a crash mid-write?), skipped")
                continue
            if not isinstance(record, dict):
                warn(f"{raw_path}:{number}: not a JSON object, skipped")
                continue
            if record.get("schema") != RECORD_SCHEMA:
                raise RunFolderError(f"{raw_path}:{number}: record schema {record.get('schema')!r}"
                                     f" is not {RECORD_SCHEMA}, which this lab reads")
            records.append(record)
    return records


def resolve(results_dir, run):
    """A run folder from 'latest', a run id, or a path."""
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = Path(results_dir) / run
    if not (candidate / RAW).exists() and not (candidate / META).exists():
        raise RunFolderError(f"no run at {run!r}: give a run id under {results_dir}, "
                             f"'latest', or a run folder's path")
    return RunFolder(candidate.resolve())
