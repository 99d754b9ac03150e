"""The machine as its kernel describes it, read once (lab.sysinfo.machine) for the host's facts,
a trial's probe and a cluster node's check: each reading given made-up /proc files of every
kind it tells apart, and the host's facts and the probe agree on this machine."""

from lab.sysinfo import machine

X86 = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Test CPU\n"
       "flags\t\t: fpu sse2 hypervisor\n\nprocessor\t: 1\nmodel name\t: Second\n"
       "flags\t\t: other\n")
ARM = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
V1 = ("tmpfs /sys/fs/cgroup tmpfs ro 0 0\n"
      "cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n")
V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
NONE = "proc /proc proc rw 0 0\n"


def test_cpu_model_and_flags_of_x86_arm_and_nothing(tmp_path):
    files = {name: tmp_path / name for name in ("x86", "arm")}
    files["x86"].write_text(X86)
    files["arm"].write_text(ARM)
    assert machine.cpu_model_and_flags(files["x86"]) == ("Intel(R) Xeon(R) Test CPU",
                                                         ["fpu", "sse2", "hypervisor"])
    assert machine.cpu_model_and_flags(files["arm"]) == ("CPU part 0xd0c", ["fp", "asimd"])
    assert machine.cpu_model_and_flags(tmp_path / "missing") == (None, [])
    assert machine.cpu_model(files["x86"]) == "Intel(R) Xeon(R) Test CPU"


def test_cgroup_version_v1_v2_none_and_unreadable(tmp_path):
    found = {}
    for name, text in (("v1", V1), ("v2", V2), ("none", NONE)):
        (tmp_path / name).write_text(text)
        found[name] = machine.cgroup_version(tmp_path / name)
    assert found == {"v1": 1, "v2": 2, "none": None}
    assert machine.cgroup_version(tmp_path / "missing") is None


def test_the_host_facts_and_the_probe_read_the_same_machine():
    from lab.experiments import probe
    from lab.hosts import facts
    host, probed = facts.host(), probe._host()
    assert host["cpu_model"] == probed["cpu_model"] == machine.cpu_model()
    assert host["cgroup_version"] == probed["cgroup_version"] == machine.cgroup_version()
    assert (host["virtualisation"] != "none") == (probed["hypervisor_flag"]
                                                   or bool(probed["hypervisor_type"]))
