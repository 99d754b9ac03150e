"""Conditions per host: every trial (scaling, ipc, lessons) reads load, swap, governor, thermal
throttling and steal of its own CPUs on the machine it runs on; the warnings name the host.
Made-up /proc and /sys trees and made-up trials, no engine."""

import pytest

from lab.analysis import conditions as judged, trials as trial_frames
from lab.experiments import conditions
from lab.run import system_checks


def _tree(root, steal, load=0.3, swap=(0, 0), governor="performance", throttles=0):
    (root / "proc").mkdir(parents=True, exist_ok=True)
    lines = ["cpu  100 0 50 1000 0 0 0 %d 0 0" % sum(steal)]
    lines += [f"cpu{i} 50 0 25 500 0 0 0 {s} 0 0" for i, s in enumerate(steal)]
    (root / "proc/stat").write_text("\n".join(lines) + "\n")
    (root / "proc/loadavg").write_text(f"{load} 0.2 0.1 1/100 42\n")
    (root / "proc/vmstat").write_text(f"nr_free_pages 1\npswpin {swap[0]}\npswpout {swap[1]}\n")
    for cpu in range(len(steal)):
        base = root / f"sys/devices/system/cpu/cpu{cpu}"
        (base / "cpufreq").mkdir(parents=True, exist_ok=True)
        (base / "thermal_throttle").mkdir(parents=True, exist_ok=True)
        (base / "cpufreq/scaling_governor").write_text(governor + "\n")
        (base / "thermal_throttle/core_throttle_count").write_text(f"{throttles}\n")


def test_a_reading_takes_steal_of_the_trials_own_cpus_only(tmp_path):
    import os
    tick = os.sysconf("SC_CLK_TCK")
    _tree(tmp_path, steal=[0, 0, 0, 0])
    before = conditions.read([1, 2], root=str(tmp_path))
    _tree(tmp_path, steal=[1000, tick, 2 * tick, 5000], load=1.5, swap=(3, 4),
          governor="powersave", throttles=2)
    after = conditions.read([1, 2], root=str(tmp_path))
    assert set(after["steal"]) == {"1", "2"}  # not CPU 0's or 3's
    kept = conditions.change(before, after)
    assert kept["steal_own_cpus_seconds"] == pytest.approx(3.0)
    assert kept["swapped_pages"] == 7 and kept["thermal_events"] == 4
    assert kept["load1"] == 0.3 and kept["governor"] == "powersave"


def test_unreadable_files_give_nothing_not_an_error(tmp_path):
    kept = conditions.change(conditions.read([0], root=str(tmp_path)),
                             conditions.read([0], root=str(tmp_path)))
    assert kept["steal_own_cpus_seconds"] is None and kept["governor"] is None


@pytest.mark.parametrize("spec", [
    {"experiment": "scaling", "variant": "strong", "params": {"work": 20000}, "workers": 1},
    {"experiment": "ipc", "variant": "pipe", "params": {"messages": 200}, "workers": 2},
    {"experiment": "lessons", "variant": "queue_in_process",
     "params": {"queue_kind": "thread_queue", "messages": 200}, "workers": 1},
], ids=["scaling", "ipc", "lessons"])
def test_every_familys_trial_records_its_conditions(spec):
    """Read by the trial entry point itself, so ipc and lessons trials carry them too."""
    from lab.experiments.__main__ import run
    result = run({"start_method": "fork", "expect_affinity": None, **spec})
    assert result["ok"], result.get("error")
    assert result["metrics"]["load1"]["value"] >= 0
    assert "steal_own_cpus_seconds" in result["metrics"]


def _record(host, index, load, steal=0.0, swapped=0, thermal=0, governor="performance"):
    return {"schema": 1, "run_id": "made-up", "round": index, "point_id": f"{host}-p",
            "experiment": "scaling", "variant": "strong", "limit": "cpuset", "cpus": 2,
            "quota": None, "placement": "spread", "workers": 2, "start_method": "fork",
            "backend": "docker", "python": "3.x", "image": "img", "host": host,
            "params": {"work": 1}, "ok": True, "warmup": index == 0, "seconds": 1.0,
            "host_seconds": 1.2, "repeat": index, "started_at": 1000.0 + index,
            "seen": {"os_cpu_count": 2},
            "metrics": {"load1": {"value": load}, "steal_own_cpus_seconds": {"value": steal},
                        "swapped_pages": {"value": swapped},
                        "thermal_events": {"value": thermal}},
            "check": {"governor": governor}}


def test_warnings_name_the_host_whose_conditions_were_bad_and_only_it():
    records = [_record("vm-a", i, load=0.2) for i in range(4)]
    records += [_record("vm-b", 0, load=3.0, steal=0.3, swapped=10, thermal=1,
                        governor="powersave")]
    records += [_record("vm-b", i, load=0.1 * i) for i in range(1, 4)]
    warnings = judged.condition_warnings(trial_frames.trials_frame(records))
    codes = sorted(w["code"] for w in warnings)
    assert codes == ["host-governor", "host-load-high", "host-steal-own-cpus", "host-swap",
                     "host-thermal"]
    assert all(w["message"].startswith("host vm-b: ") for w in warnings)
    steal = next(w for w in warnings if w["code"] == "host-steal-own-cpus")
    assert "1 of 4 trials" in steal["message"] and "25%" in steal["message"]
    lines = judged.condition_sentences(trial_frames.trials_frame(records))
    assert len(lines) == 2 and lines[1].startswith("Host vm-b: load 3.00 on 2 CPUs")


def test_quiet_hosts_give_no_condition_warning():
    records = [_record(h, i, load=0.4) for h in ("vm-a", "vm-b") for i in range(3)]
    assert judged.condition_warnings(trial_frames.trials_frame(records)) == []


def test_the_run_machines_own_checks_name_it():
    snapshot = system_checks.before(cpus=1)
    snapshot.readings["load_average"] = {"load1": 9.0, "load5": 1.0, "load15": 1.0}
    found = system_checks.after(snapshot.as_dict())
    load = next(w for w in found if w["code"] == "load-high")
    assert load["message"].startswith("this machine (where invoke runs): load average 9.00")
