"""The measured ceiling (`invoke scale`'s `ceiling` variant): N pinned independent spinners
against one. Made-up trials show the `not-whole-cpus` warning come out both ways, per host; the
chart draws the ceiling beside the ideal line; the trial pins one spinner per CPU; the default
run plans it and an explicit --variants does not."""

import os
import re

import pytest

from lab.analysis import ceiling as ceilings, scaling as results, trials as trial_frames
from lab.experiments import SpecError, scaling as trial
from lab.present import scaling_charts, scaling_report
from tests.conftest import invoke

HOST_CPUS = len(os.sched_getaffinity(0))


def _record(variant, cpus, seconds, repeat, host="local"):
    return {"schema": 1, "run_id": "made-up", "round": repeat,
            "point_id": f"{host}-{variant}-{cpus}", "experiment": "scaling",
            "variant": variant, "limit": "cpuset", "cpus": cpus, "quota": None,
            "placement": "spread", "workers": cpus, "start_method": "fork",
            "backend": "docker", "python": "3.x", "image": "img", "host": host,
            "params": {"work": 1000}, "ok": True, "warmup": False, "seconds": seconds,
            "repeat": repeat, "metrics": {}}


def _host(host, ceiling_two, strong_two):
    """Five rounds of a host whose two spinners take `ceiling_two` s (one: 1 s) and whose strong
    run takes `strong_two` s at 2 CPUs (1: 2 s); small jitter."""
    records = []
    for repeat, jitter in enumerate((0.0, 0.01, -0.01, 0.02, -0.02)):
        records += [_record("ceiling", 1, 1.0 + jitter, repeat, host),
                    _record("ceiling", 2, ceiling_two + jitter, repeat, host),
                    _record("strong", 1, 2.0 + jitter, repeat, host),
                    _record("strong", 2, strong_two + jitter, repeat, host),
                    _record("serial", 1, 1.9 + jitter, repeat, host)]
    return records


def _summary(records):
    frame = trial_frames.trials_frame(records)
    return frame, results.scaling_summary(frame)


def test_whole_cpus_give_no_warning_and_a_sentence_saying_so():
    _, summary = _summary(_host("vm-a", 1.0, 1.02))  # two spinners as fast as one: 2 x one
    row = summary.set_index("point_id").loc["vm-a-ceiling-2"]
    assert row["speedup"] == pytest.approx(2.0)
    assert row["speedup_ci_low"] <= 2.0 <= row["speedup_ci_high"]
    assert ceilings.ceiling_warnings(summary) == []
    (sentence,) = ceilings.sentences(summary)
    assert "2 CPUs deliver 2.00 [" in sentence and "whole CPUs" in sentence
    strong = summary.set_index("point_id").loc["vm-a-strong-2"]
    assert strong["ceiling"] == pytest.approx(2.0)
    assert strong["of_ceiling"] == pytest.approx(2.0 / 1.02 / 2.0)


def test_shared_cores_give_a_warning_naming_the_host_and_its_interval():
    # the KVM guest: two pinned spinners delivered about 1.32 times one
    records = _host("vm-a", 1.0, 1.02) + _host("vm-b", 2 / 1.32, 1.6)
    _, summary = _summary(records)
    found = ceilings.ceiling_warnings(summary)
    assert [w["code"] for w in found] == ["not-whole-cpus"]
    message = found[0]["message"]
    assert message.startswith("host vm-b: its CPUs are not whole CPUs: 2 CPUs deliver 1.32 [")
    assert "vm-a" not in message
    low, high = map(float, re.search(r"1\.32 \[([\d.]+), ([\d.]+)\]", message).groups())
    assert low <= 1.32 <= high < 1.8
    b = summary.set_index("point_id").loc["vm-b-strong-2"]
    assert b["efficiency"] == pytest.approx(2 / 1.6 / 2)            # against N: 0.62
    assert b["of_ceiling"] == pytest.approx((2 / 1.6) / 1.32, rel=1e-3)  # against the ceiling: 0.95
    sentences = ceilings.sentences(summary)
    assert any(s.startswith("Host vm-b: its 2 CPUs deliver 1.32") and "not whole" in s
               for s in sentences)
    assert any(s.startswith("Host vm-a: its 2 CPUs deliver 2.00") for s in sentences)


def test_the_family_warnings_carry_the_ceiling_warning():
    from lab.families.scale import ScaleFamily
    frame, summary = _summary(_host("local", 1.6, 1.7))
    codes = [w["code"] for w in ScaleFamily().warnings(frame, summary)]
    assert "not-whole-cpus" in codes


def test_speedup_chart_draws_the_measured_ceiling_per_host(tmp_path, monkeypatch):
    frame, summary = _summary(_host("vm-a", 1.0, 1.02) + _host("vm-b", 1.5, 1.6))
    labels = []
    original = scaling_charts.plt.Axes.errorbar

    def spy(self, *args, **kwargs):
        labels.append(kwargs.get("label", ""))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(scaling_charts.plt.Axes, "errorbar", spy)
    written = scaling_charts.speedup_chart(summary, frame, tmp_path)
    assert (tmp_path / "speedup.png").stat().st_size > 1000 and written
    ceiling_labels = [label for label in labels if label.startswith("measured ceiling")]
    assert len(ceiling_labels) == 2
    assert any("host vm-b" in label for label in ceiling_labels)
    spread = results.per_trial_speedups(frame, summary)
    dots = spread[spread["point_id"] == "vm-b-ceiling-2"]["speedup"]
    assert dots.median() == pytest.approx(2 * 1.0 / 1.5, rel=0.02)  # N x T(1) / T(N) per trial


def test_the_table_shows_speedup_against_the_ceiling():
    _, summary = _summary(_host("local", 1.25, 1.3))
    text = scaling_report.scaling_table(summary)
    assert "of ceil." in text and "ceiling" in text


def test_a_ceiling_trial_pins_one_spinner_per_cpu_and_checks_its_work():
    result = trial.run_trial({"variant": "ceiling", "params": {"work": 20000},
                              "workers": min(2, HOST_CPUS), "start_method": "fork"})
    assert result["check"]["warmed_workers"] == min(2, HOST_CPUS)
    assert result["check"]["iterations"] == 20000 * min(2, HOST_CPUS)
    assert result["metrics"]["workers_used"]["value"] == min(2, HOST_CPUS)
    with pytest.raises(SpecError, match="one CPU per spinner"):
        trial.run_trial({"variant": "ceiling", "params": {"work": 1000},
                         "workers": HOST_CPUS + 1, "start_method": "fork"})


def _planned(*flags):
    done = invoke("scale", "--dry-run", "--backend", "local", "--seed", "5", *flags)
    assert done.returncode == 0, done.stderr
    return re.findall(r"scaling (\w+), cpus (\d+), workers (\d+)", done.stdout)


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs 2 CPUs")
def test_the_default_run_plans_the_ceiling_and_an_explicit_variants_does_not():
    default = _planned("--cpus", "1,2")
    assert ("ceiling", "1", "1") in default and ("ceiling", "2", "2") in default
    assert not [p for p in _planned("--cpus", "1,2", "--variants", "strong") if p[0] == "ceiling"]
    assert not [p for p in _planned("--cpus", "1") if p[0] == "ceiling"]  # 1 by definition
    alone = _planned("--cpus", "2", "--variants", "ceiling")
    assert alone == [("ceiling", "1", "1"), ("ceiling", "2", "2")]


def test_efficiency_chart_shows_strong_against_the_ceiling(tmp_path, monkeypatch):
    _, summary = _summary(_host("vm-b", 2 / 1.32, 1.6))
    labels = []
    original = scaling_charts.plt.Axes.plot

    def spy(self, *args, **kwargs):
        labels.append(kwargs.get("label", ""))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(scaling_charts.plt.Axes, "plot", spy)
    scaling_charts.efficiency_chart(summary, tmp_path)
    assert any(label.endswith("against the measured ceiling") for label in labels)
    assert (tmp_path / "efficiency.png").stat().st_size > 1000


def test_a_whole_median_with_a_wide_interval_says_it_cannot_tell():
    records = []
    for repeat, two in enumerate((0.6, 1.0, 2.2)):  # a noisy machine: medians whole, spread wide
        records += [_record("ceiling", 1, 1.0, repeat), _record("ceiling", 2, two, repeat)]
    _, summary = _summary(records)
    (sentence,) = ceilings.sentences(summary)
    assert "2 CPUs deliver 2.00 [" in sentence and "too noisy to tell" in sentence
    assert ceilings.ceiling_warnings(summary) == []
