"""The lab's data format, defined once: trial records (raw.jsonl), plan.json and meta.json.

The data format is the product: a run folder must stay readable by later versions of the lab and
by anyone's pandas. Each file is a pydantic model: a record is validated when it is written and
when it is read; a damaged or malformed line is reported with its number (and the field that is
wrong) and skipped; a record of a schema this lab does not know is refused. Fields may be added
(every model keeps fields it does not know), never renamed without a schema bump.

Host side only (pydantic): the trial itself prints a plain JSON object (lab.experiments) that
the runner turns into a TrialRecord.
"""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

RECORD_SCHEMA = 1      # raw.jsonl records (README: The run folder); plan.json and meta.json carry it too
INTERRUPTED = "interrupted"  # error text of a trial cut off by Ctrl-C / SIGTERM starts so
HOST_LOST = "host lost"      # ... and of a trial whose host stopped answering (--hosts runs)


class RecordsError(RuntimeError):
    """A run's files cannot be read as this lab's data; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")  # newer fields stay, older readers ignore them


class TrialRecord(_Model):
    """One trial: what the point was, what the trial measured and saw, what the host observed."""
    schema_: Literal[1] = RECORD_SCHEMA
    run_id: str
    point_id: str
    experiment: str
    variant: str
    backend: str | None = None
    host: str | None = None          # the host's name; its facts are in meta.json
    image: str | None = None         # image id
    image_tag: str | None = None
    python: str | None = None
    start_method: str | None = None
    limit: str = "cpuset"
    cpus: int
    cpuset: str = ""
    quota: float | None = None
    placement: str | None = None
    workers: int | None = None
    params: dict[str, Any] = {}
    round: int
    repeat: int
    warmup: bool = False
    ok: bool
    error: str | None = None
    seconds: float | None = None     # the timed section
    cpu_seconds: float | None = None
    metrics: dict[str, Any] = {}
    check: dict[str, Any] = {}
    seen: dict[str, Any] | None = None
    throttled_seconds: float | None = None
    nr_throttled: int | None = None
    cgroup_cpu_seconds: float | None = None
    steal_seconds: float | None = None
    host_seconds: float | None = None
    overhead_seconds: float | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    stderr_tail: str = ""
    started_at: float | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True,
                              alias_generator=lambda name: "schema" if name == "schema_" else name)

    def as_dict(self):
        return self.model_dump(by_alias=True)


class PointModel(_Model):
    experiment: str
    variant: str
    limit: str
    cpus: int
    cpuset: list[int]
    quota: float | None = None
    placement: str
    workers: int | None = None
    start_method: str
    params: dict[str, Any] = {}
    image: str = ""
    host: str = ""                  # --hosts: the host that runs the point ("" for the default)


class PlanFile(_Model):
    """plan.json: the points, seed and rounds of a run (the same file reruns it elsewhere)."""
    schema_: int = RECORD_SCHEMA
    task: str
    repeat: int
    seed: int
    discard_first_round: bool = True
    points: list[PointModel]
    sizing: dict[str, dict[str, Any]] = {}  # point_id -> the params its trials ran (run.sizing)

    model_config = ConfigDict(extra="allow", populate_by_name=True,
                              alias_generator=lambda name: "schema" if name == "schema_" else name)


class Meta(_Model):
    """meta.json: what was run, on what, by which command, and how it ended."""
    schema_: int = RECORD_SCHEMA
    run_id: str | None = None
    task: str | None = None
    status: str | None = None       # running | complete | interrupted | failed
    started_at: float | None = None
    finished_at: float | None = None
    host: dict[str, Any] = {}
    hosts: dict[str, Any] = {}      # --hosts: {host name: its facts, engine and images}
    backend: dict[str, Any] = {}
    image: dict[str, Any] | None = None
    images: dict[str, Any] = {}
    lab: dict[str, Any] = {}
    config: dict[str, Any] = {}
    seed: int | None = None
    trials_planned: int | None = None
    points_planned: int | None = None
    warnings: list[Any] = []
    options: dict[str, Any] = {}    # the family's validated options
    flags: dict[str, Any] = {}      # the flag values the options came from (--resume re-parses)

    model_config = ConfigDict(extra="allow", populate_by_name=True,
                              alias_generator=lambda name: "schema" if name == "schema_" else name)


def _first_problem(error):
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "record"
    return f"{where}: {first.get('msg')}"


def validate_record(data):
    """A record dict checked against the model (RecordsError naming the field when wrong)."""
    try:
        return TrialRecord.model_validate(data).as_dict()
    except ValidationError as error:
        raise RecordsError(f"not a trial record ({_first_problem(error)})") from None


def read_plan(path):
    """The PlanFile of `path`; RecordsError (one line) when it is missing or malformed."""
    try:
        return PlanFile.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as error:
        reason = _first_problem(error) if isinstance(error, ValidationError) else error
        raise RecordsError(f"{path} is missing or not a plan.json ({reason})") from None


def read_meta(path):
    """meta.json as a dict, checked against the Meta model; RecordsError (one line) when it
    cannot be read or is not one."""
    try:
        data = json.loads(Path(path).read_text())
        Meta.model_validate(data)
    except ValidationError as error:
        raise RecordsError(f"{path} is not a run's meta.json ({_first_problem(error)})") from None
    except (OSError, ValueError) as error:  # unreadable, or not JSON (an editor, a full disk)
        raise RecordsError(f"{path} is not a run's meta.json ({error})") from None
    return data


def trial_key(record):
    """(point_id, round): what identifies a trial in a run (plan.Trial.key)."""
    return (record.get("point_id"), record.get("round"))


def is_cut_off(record):
    """A trial stopped by Ctrl-C / SIGTERM, or lost with its host: not a measurement, run again
    by --resume."""
    return record.get("ok") is False and str(record.get("error") or "").startswith(
        (INTERRUPTED, HOST_LOST))


def read_records(raw_path, warn=print, superseded=False):
    """Every valid record of raw.jsonl, as dicts. A damaged line or a record with a malformed
    field is reported with its line number and skipped; a record of an unknown schema is refused
    (RecordsError). A trial cut off by an interruption and run again by --resume counts once, as
    its rerun (`superseded=True` keeps the cut-off record too)."""
    records = []
    raw_path = Path(raw_path)
    if not raw_path.exists():
        return records
    try:
        handle = open(raw_path, "rb")
    except OSError as error:  # a folder by that name, or no permission to read it
        raise RecordsError(f"{raw_path}: cannot read the run's records ({error.strerror})") \
            from None
    with handle:
        for number, raw_line in enumerate(handle, start=1):
            if not raw_line.strip():
                continue
            try:
                data = json.loads(raw_line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                last = not raw_line.endswith(b"\n")
                warn(f"{raw_path}:{number}: damaged line"
                     f"{' (the last one, cut off: a crash mid-write?)' if last else ''}, skipped")
                continue
            if not isinstance(data, dict):
                warn(f"{raw_path}:{number}: not a JSON object, skipped")
                continue
            if data.get("schema") != RECORD_SCHEMA:
                raise RecordsError(f"{raw_path}:{number}: record schema {data.get('schema')!r}"
                                   f" is not {RECORD_SCHEMA}, which this lab reads")
            try:
                records.append(validate_record(data))
            except RecordsError as why:
                warn(f"{raw_path}:{number}: {why}, skipped")
    if superseded:
        return records
    measured = {trial_key(r) for r in records if not is_cut_off(r)}
    return [r for r in records if not (is_cut_off(r) and trial_key(r) in measured)]
