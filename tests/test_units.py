"""Arithmetic and parsing on synthetic inputs: options, plan, topology, apt sources, outcomes."""

import json
from collections import Counter

import pytest

from lab import records as trial_records
from lab.backends import aptsources
from lab.hosts import topology
from lab.run import options, plan
from lab.backends import outcome_from
from lab.run.options import BadInput


@pytest.mark.parametrize("text, host, expected", [
    ("1,2", 2, [1, 2]), ("2, 1,2", 4, [1, 2]), ("all", 2, [1, 2]), ("all", 6, [1, 2, 4, 6]),
    ("all", 8, [1, 2, 4, 8]), ("all", 1, [1]),
])
def test_cpu_counts_parse(text, host, expected):
    assert options.cpu_counts(text, host) == expected


@pytest.mark.parametrize("text, fragment", [
    ("0", "outside this host"), ("3", "outside this host"), ("a,b", "not a whole number"),
    ("1,,2", "empty item"), ("1.5", "not a whole number"), ("-1", "not a whole number"),
])
def test_cpu_counts_refused_with_what_is_allowed(text, fragment):
    with pytest.raises(BadInput) as error:
        options.cpu_counts(text, 2)
    message = str(error.value)
    assert fragment in message and "allowed" in message
    assert "\n" not in message


def test_quota_accepts_fractions_and_refuses_nonsense():
    assert options.quotas("0.5,1.5,1.5", 2) == [0.5, 1.5]
    for bad in ("x", "0", "3", "nan"):
        with pytest.raises(BadInput):
            options.quotas(bad, 2)


def test_work_values():
    assert options.work("auto") == "auto"
    assert options.work("6e7") == 60_000_000
    assert options.work("2_000") == 2000
    for bad in ("0", "-5", "lots"):
        with pytest.raises(BadInput):
            options.work(bad)


def _points(n):
    return [plan.make_point(experiment="probe", variant="seen", limit="cpuset", cpus=1,
                            cpuset=[0], quota=None, placement="spread", workers=i + 1,
                            start_method="fork") for i in range(n)]


def test_every_round_holds_every_point_once_and_first_round_is_warmup():
    points = _points(5)
    trials = plan.Plan(points, repeat=3, seed=7).trials
    assert len(trials) == 5 * 4
    for round_index in range(4):
        in_round = [t for t in trials if t.round == round_index]
        assert Counter(t.point for t in in_round) == Counter(points)
        assert all(t.warmup == (round_index == 0) for t in in_round)
    assert sorted({t.repeat for t in trials}) == [0, 1, 2, 3]


def test_shuffle_is_reproducible_from_its_seed_and_differs_between_seeds():
    points = _points(8)
    order = lambda seed: [t.point.point_id for t in plan.Plan(points, 4, seed).trials]  # noqa: E731
    assert order(11) == order(11)
    assert order(11) != order(12)


def test_point_ids_are_stable_and_distinct():
    first, second = _points(2)
    again = _points(2)[0]
    assert first.point_id == again.point_id and first.point_id != second.point_id


SMT_CPUS = [topology.Cpu(i, 0, i % 4) for i in range(8)]  # cpu i and i+4 share a core


def test_spread_takes_one_cpu_per_core_first_compact_fills_cores():
    assert topology.cpuset_for(4, SMT_CPUS, "spread") == [0, 1, 2, 3]
    assert topology.cpuset_for(2, SMT_CPUS, "compact") == [0, 4]
    assert topology.cpuset_for(4, SMT_CPUS, "compact") == [0, 1, 4, 5]
    assert topology.describe(SMT_CPUS)["smt"] is True
    with pytest.raises(ValueError):
        topology.cpuset_for(9, SMT_CPUS, "spread")


def test_apt_sources_one_line_format(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n")
    assert aptsources.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_apt_sources_deb822_format_skips_security_and_other_archives(tmp_path):
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "a-nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.example.com/node_20.x\nSuites: nodistro\n")
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://archive.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    (parts / "old.list.disabled").write_text("deb http://wrong.example/debian bookworm main\n")
    assert aptsources.debian_mirror(tmp_path) == "http://archive.example/debian"


def test_apt_sources_without_debian_entry(tmp_path):
    (tmp_path / "sources.list").write_text("deb http://ppa.example/ubuntu jammy main\n")
    assert aptsources.debian_mirror(tmp_path) is None


@pytest.mark.parametrize("stdout, exit_code, timed_out, oom, reason", [
    ('{"ok": true, "seconds": 1}\n', 0, False, False, None),
    ("noise\nnot json\n", 0, False, False, "unparsable output"),
    ("", 3, False, False, "exited with status 3"),
    ("", 137, True, False, "timeout"),
    ("", 137, False, True, "out of memory"),
    ('{"ok": false, "error": "check failed: sum"}\n', 1, False, False, "check failed: sum"),
])
def test_trial_outcome_reasons(stdout, exit_code, timed_out, oom, reason):
    outcome = outcome_from(stdout, "x" * 5000, exit_code, timed_out, oom, 1.0, 5)
    if reason is None:
        assert outcome.error is None and outcome.result["seconds"] == 1
    else:
        assert reason in outcome.error
    assert len(outcome.stderr_tail) == 2000


def _record(**fields):
    return {"schema": 1, "run_id": "r", "point_id": "p", "experiment": "probe", "variant": "seen",
            "cpus": 1, "round": 0, "repeat": 1, "ok": True, **fields}


def test_damaged_last_line_is_skipped_with_its_number(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(_record(a=1)) + "\n" + '{"schema": 1, "a"')
    warnings = []
    records = trial_records.read_records(raw, warn=warnings.append)
    assert [r["a"] for r in records] == [1]  # a field the model does not know is kept
    assert "raw.jsonl:2" in warnings[0]


def test_records_that_cannot_be_read_are_one_line_and_meta_json_too(tmp_path):
    (tmp_path / "raw.jsonl").mkdir()  # a folder where the records should be
    with pytest.raises(trial_records.RecordsError, match="raw.jsonl: cannot read the run's "
                                                         r"records \(Is a directory\)"):
        trial_records.read_records(tmp_path / "raw.jsonl")
    (tmp_path / "meta.json").write_text('{"schema": 1, "run_')  # cut off
    with pytest.raises(trial_records.RecordsError, match="meta.json is not a run's meta.json"):
        trial_records.read_meta(tmp_path / "meta.json")


def test_a_record_with_a_malformed_field_is_skipped_naming_line_and_field(tmp_path):
    raw = tmp_path / "raw.jsonl"
    lines = [_record(), _record(round="second"), _record(cpus=None), _record(round=2)]
    raw.write_text("".join(json.dumps(line) + "\n" for line in lines))
    warnings = []
    records = trial_records.read_records(raw, warn=warnings.append)
    assert [r["round"] for r in records] == [0, 2]
    assert len(warnings) == 2
    assert "raw.jsonl:2" in warnings[0] and "round" in warnings[0]
    assert "raw.jsonl:3" in warnings[1] and "cpus" in warnings[1]


def test_a_record_of_schema_1_written_before_the_models_still_reads(tmp_path):
    """Runs written by lab 0.1 (no steal_seconds, no check) load as they are."""
    old = _record(seconds=1.5, metrics={}, seen=None, throttled_seconds=None)
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(old) + "\n")
    (record,) = trial_records.read_records(raw)
    assert record["seconds"] == 1.5 and record["steal_seconds"] is None


def test_unknown_schema_is_refused(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"schema": 99}) + "\n")
    with pytest.raises(trial_records.RecordsError, match="schema 99"):
        trial_records.read_records(raw)


def test_offline_base_without_root_or_debootstrap_says_what_to_do(monkeypatch):
    from lab.backends import image
    monkeypatch.setattr(image.os, "geteuid", lambda: 1000)
    with pytest.raises(image.ImageError, match="needs root"):
        image.build_offline_base(None, "trixie", say=lambda *_: None)
    monkeypatch.setattr(image.os, "geteuid", lambda: 0)
    monkeypatch.setattr(image.shutil, "which", lambda _name: None)
    with pytest.raises(image.ImageError, match="apt-get install debootstrap"):
        image.build_offline_base(None, "trixie", say=lambda *_: None)
