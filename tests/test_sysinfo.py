"""lab.sysinfo: CPU lists, cgroup v1/v2/hybrid trees laid out in tmp_path, and the real machine."""

import multiprocessing
import os

import pytest

from lab import sysinfo
from lab.sysinfo import CgroupV1, CgroupV2, find_cgroup

DOCKER_ID = "4f1c0a9e2b7d"


# ---------------------------------------------------------------------------------------------
# A fake machine: /proc/self/cgroup, /proc/self/mountinfo and cgroup files under tmp_path


class FakeTree:
    def __init__(self, root):
        self.root = root
        self._mount_lines = []

    def proc_cgroup(self, *lines):
        self._write("proc/self/cgroup", "\n".join(lines) + "\n")

    def mount(self, mount_point, fstype="cgroup", super_options="rw", mount_root="/"):
        number = 30 + len(self._mount_lines)
        self._mount_lines.append(
            f"{number} 25 0:{number} {mount_root} {mount_point} rw,nosuid,nodev,noexec,relatime "
            f"shared:{number} - {fstype} {fstype} {super_options}")
        self._write("proc/self/mountinfo", "\n".join(self._mount_lines) + "\n")
        (self.root / mount_point.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def files(self, folder, **contents):
        """Write cgroup files into `folder` (a path on the fake machine); '__' stands for '.'."""
        for name, text in contents.items():
            self._write(f"{folder.strip('/')}/{name.replace('__', '.')}", text)

    def _write(self, relative, text):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def find(self):
        return find_cgroup(str(self.root))

    def counters(self):
        return sysinfo.cpu_counters(str(self.root))


@pytest.fixture
def tree(tmp_path):
    return FakeTree(tmp_path)


V1_CPU_STAT = "nr_periods 40\nnr_throttled 7\nthrottled_time 2500000000\n"
V2_CPU_STAT = ("usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
               "nr_periods 40\nnr_throttled 7\nthrottled_usec 2500000\n")


def v1_apart(tree, path="/", mount_root="/"):
    """cgroup v1 with cpu, cpuacct and cpuset each on its own mount (like this build machine)."""
    tree.proc_cgroup(f"4:memory:{path}", f"3:cpuset:{path}", f"2:cpuacct:{path}", f"1:cpu:{path}")
    for controller in ("cpu", "cpuacct", "cpuset", "memory"):
        tree.mount(f"/sys/fs/cgroup/{controller}", super_options=f"rw,{controller}",
                   mount_root=mount_root)


def v1_together(tree, path="/", mount_root="/"):
    """cgroup v1 with cpu and cpuacct co-mounted (the usual systemd layout), cpuset apart."""
    tree.proc_cgroup(f"5:cpuset:{path}", f"4:cpu,cpuacct:{path}", f"1:name=systemd:{path}")
    tree.mount("/sys/fs/cgroup/cpu,cpuacct", super_options="rw,cpu,cpuacct", mount_root=mount_root)
    tree.mount("/sys/fs/cgroup/cpuset", super_options="rw,cpuset", mount_root=mount_root)
    tree.mount("/sys/fs/cgroup/systemd", super_options="rw,xattr,name=systemd",
               mount_root=mount_root)


def v2_only(tree, path="/", mount_root="/"):
    tree.proc_cgroup(f"0::{path}")
    tree.mount("/sys/fs/cgroup", fstype="cgroup2", super_options="rw,nsdelegate",
               mount_root=mount_root)


# ---------------------------------------------------------------------------------------------
# CPU lists


@pytest.mark.parametrize("text, cpus", [
    ("0-3,8-11", [0, 1, 2, 3, 8, 9, 10, 11]),
    ("0", [0]),
    ("0-1\n", [0, 1]),
    ("5,1,3-4", [1, 3, 4, 5]),
    ("2-2", [2]),
    ("", []),
    ("  \n", []),
])
def test_parse_cpu_list_reads_kernel_cpu_lists(text, cpus):
    assert sysinfo.parse_cpu_list(text) == cpus


@pytest.mark.parametrize("garbage", ["a", "0-", "-1", "3-1", "0,,1", "1.5", "0-3:2", "0;1"])
def test_parse_cpu_list_refuses_garbage(garbage):
    with pytest.raises(ValueError):
        sysinfo.parse_cpu_list(garbage)


@pytest.mark.parametrize("cpus, text", [
    ([0, 1, 2, 5], "0-2,5"),
    ([11, 10, 9, 8, 3, 2, 1, 0], "0-3,8-11"),
    ([4], "4"),
    ([1, 1, 2], "1-2"),
    ([], ""),
])
def test_format_cpu_list_sorts_and_collapses_ranges(cpus, text):
    assert sysinfo.format_cpu_list(cpus) == text


@pytest.mark.parametrize("text", ["0-3,8-11", "0", "0,2,4,6", "1-63", "0-1,3,5-7"])
def test_cpu_list_round_trips_through_parse_and_format(text):
    assert sysinfo.format_cpu_list(sysinfo.parse_cpu_list(text)) == text


# ---------------------------------------------------------------------------------------------
# cgroup v1


def test_v1_controllers_mounted_apart_are_each_read_from_their_own_mount(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="200000\n", cpu__cfs_period_us="100000\n",
               cpu__stat=V1_CPU_STAT)
    tree.files("/sys/fs/cgroup/cpuacct", cpuacct__usage="3000000000\n")
    tree.files("/sys/fs/cgroup/cpuset", cpuset__effective_cpus="0-1\n")
    cgroup = tree.find()
    assert isinstance(cgroup, CgroupV1)
    assert (cgroup.version, cgroup.path) == (1, "/")
    assert cgroup.quota_cpus() == 2.0
    assert cgroup.cpuset() == "0-1"
    assert cgroup.cpu_stat() == {"nr_periods": 40, "nr_throttled": 7, "throttled_seconds": 2.5}
    assert cgroup.usage_seconds() == 3.0


def test_v1_cpu_and_cpuacct_mounted_together_share_one_folder(tree):
    v1_together(tree, path="/user.slice")
    folder = "/sys/fs/cgroup/cpu,cpuacct/user.slice"
    tree.files(folder, cpu__cfs_quota_us="50000\n", cpu__cfs_period_us="100000\n",
               cpu__stat=V1_CPU_STAT, cpuacct__usage="1500000000\n")
    tree.files("/sys/fs/cgroup/cpuset/user.slice", cpuset__effective_cpus="0-3,8-11\n")
    cgroup = tree.find()
    assert cgroup.version == 1
    assert cgroup.path == "/user.slice"
    assert cgroup.quota_cpus() == 0.5
    assert cgroup.usage_seconds() == 1.5
    assert cgroup.cpuset() == "0-3,8-11"
    assert cgroup.cpu_stat()["throttled_seconds"] == 2.5


def test_v1_quota_minus_one_means_no_quota(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="-1\n", cpu__cfs_period_us="100000\n")
    assert tree.find().quota_cpus() is None


def test_v1_fractional_quota(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="150000\n", cpu__cfs_period_us="100000\n")
    assert tree.find().quota_cpus() == 1.5


def test_v1_docker_container_path_is_the_mount_root(tree):
    # Docker 20.10 on v1: /proc/self/cgroup says /docker/<id>, and that folder is what is mounted
    container = f"/docker/{DOCKER_ID}"
    v1_apart(tree, path=container, mount_root=container)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="100000\n", cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/cpuset", cpuset__cpus="0\n")
    cgroup = tree.find()
    assert cgroup.path == "/"
    assert cgroup.hierarchies["cpu"].folder == str(tree.root / "sys/fs/cgroup/cpu")
    assert cgroup.quota_cpus() == 1.0
    assert cgroup.cpuset() == "0"


def test_v1_nested_path_below_the_mount_root_keeps_the_rest(tree):
    v1_apart(tree, path="/kubepods/pod1/ctr", mount_root="/kubepods")
    tree.files("/sys/fs/cgroup/cpu/pod1/ctr", cpu__cfs_quota_us="300000\n",
               cpu__cfs_period_us="100000\n")
    cgroup = tree.find()
    assert cgroup.path == "/pod1/ctr"
    assert cgroup.quota_cpus() == 3.0


def test_v1_host_path_under_a_root_mount_is_followed(tree):
    v1_apart(tree, path=f"/docker/{DOCKER_ID}")
    tree.files(f"/sys/fs/cgroup/cpu/docker/{DOCKER_ID}", cpu__cfs_quota_us="100000\n",
               cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="-1\n", cpu__cfs_period_us="100000\n")
    cgroup = tree.find()
    assert cgroup.path == f"/docker/{DOCKER_ID}"
    assert cgroup.quota_cpus() == 1.0


def test_v1_quota_of_a_parent_cgroup_applies(tree):
    v1_apart(tree, path="/limited.slice/job")
    tree.files("/sys/fs/cgroup/cpu/limited.slice", cpu__cfs_quota_us="250000\n",
               cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/cpu/limited.slice/job", cpu__cfs_quota_us="-1\n",
               cpu__cfs_period_us="100000\n")
    assert tree.find().quota_cpus() == 2.5


def test_v1_tightest_quota_of_cgroup_and_parents_wins(tree):
    v1_apart(tree, path="/limited.slice/job")
    tree.files("/sys/fs/cgroup/cpu/limited.slice", cpu__cfs_quota_us="150000\n",
               cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/cpu/limited.slice/job", cpu__cfs_quota_us="400000\n",
               cpu__cfs_period_us="100000\n")
    assert tree.find().quota_cpus() == 1.5


def test_v1_cgroup_folder_absent_from_the_mount_falls_back_to_the_mount_point(tree):
    # the mount's root is "/" but the process's folder isn't there (another namespace's view)
    v1_apart(tree, path=f"/docker/{DOCKER_ID}")
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="100000\n", cpu__cfs_period_us="100000\n")
    cgroup = tree.find()
    assert cgroup.hierarchies["cpu"].folder == str(tree.root / "sys/fs/cgroup/cpu")
    assert cgroup.quota_cpus() == 1.0


def test_v1_path_escaping_the_mount_falls_back_to_the_mount_point(tree):
    v1_apart(tree, path="/../../elsewhere")
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="100000\n", cpu__cfs_period_us="100000\n")
    # a folder where the escaping path would land, outside the mount: never to be read
    tree.files("/sys/fs/elsewhere", cpu__cfs_quota_us="900000\n", cpu__cfs_period_us="100000\n")
    cgroup = tree.find()
    assert cgroup.hierarchies["cpu"].folder == str(tree.root / "sys/fs/cgroup/cpu")
    assert cgroup.quota_cpus() == 1.0


def test_v1_cpuset_falls_back_to_cpuset_cpus(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpuset", cpuset__cpus="2-3\n")
    assert tree.find().cpuset() == "2-3"


def test_v1_prefers_cpuset_effective_cpus(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpuset", cpuset__cpus="0-7\n", cpuset__effective_cpus="0-3\n")
    assert tree.find().cpuset() == "0-3"


def test_v1_missing_files_read_as_none(tree):
    v1_apart(tree)
    cgroup = tree.find()
    assert cgroup is not None
    assert cgroup.quota_cpus() is None
    assert cgroup.cpuset() is None
    assert cgroup.cpu_stat() is None
    assert cgroup.usage_seconds() is None
    assert tree.counters() is None


def test_v1_a_folder_in_place_of_a_file_reads_as_none(tree):
    v1_apart(tree)
    (tree.root / "sys/fs/cgroup/cpu/cpu.cfs_quota_us").mkdir()
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_period_us="100000\n", cpu__stat=V1_CPU_STAT)
    cgroup = tree.find()
    assert cgroup.quota_cpus() is None
    assert cgroup.cpu_stat()["nr_throttled"] == 7


def test_permission_denied_reads_as_none(tree, monkeypatch):
    # tests run as root, where chmod 000 still reads: make open() refuse that one file instead
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="100000\n", cpu__cfs_period_us="100000\n")
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("cpu.cfs_quota_us"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    assert tree.find().quota_cpus() is None


def test_garbage_in_cgroup_files_reads_as_none(tree):
    v1_apart(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="lots\n", cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/cpuset", cpuset__effective_cpus="zero\n", cpuset__cpus="\n")
    cgroup = tree.find()
    assert cgroup.quota_cpus() is None
    assert cgroup.cpuset() is None


def test_v1_without_cpu_controller_mounted_still_reads_cpuset(tree):
    tree.proc_cgroup("3:cpuset:/", "1:cpu:/")
    tree.mount("/sys/fs/cgroup/cpuset", super_options="rw,cpuset")
    tree.files("/sys/fs/cgroup/cpuset", cpuset__effective_cpus="0-5\n")
    cgroup = tree.find()
    assert cgroup.version == 1
    assert cgroup.cpuset() == "0-5"
    assert cgroup.quota_cpus() is None


# ---------------------------------------------------------------------------------------------
# cgroup v2


def test_v2_fractional_quota_and_counters(tree):
    v2_only(tree, path="/system.slice/job.service")
    tree.files("/sys/fs/cgroup/system.slice/job.service", cpu__max="150000 100000\n",
               cpu__stat=V2_CPU_STAT, cpuset__cpus__effective="0-3,8-11\n")
    cgroup = tree.find()
    assert isinstance(cgroup, CgroupV2)
    assert (cgroup.version, cgroup.path) == (2, "/system.slice/job.service")
    assert cgroup.quota_cpus() == 1.5
    assert cgroup.cpuset() == "0-3,8-11"
    assert cgroup.cpu_stat() == {"nr_periods": 40, "nr_throttled": 7, "throttled_seconds": 2.5}
    assert cgroup.usage_seconds() == 3.0


def test_v2_quota_max_means_no_quota(tree):
    v2_only(tree)
    tree.files("/sys/fs/cgroup", cpu__max="max 100000\n")
    assert tree.find().quota_cpus() is None


def test_v2_container_with_its_own_namespace_reads_the_mount_point(tree):
    # cgroupns=private (Docker's default on v2): /proc/self/cgroup says "0::/"
    v2_only(tree)
    tree.files("/sys/fs/cgroup", cpu__max="200000 100000\n", cpuset__cpus__effective="1\n")
    cgroup = tree.find()
    assert cgroup.path == "/"
    assert cgroup.quota_cpus() == 2.0
    assert cgroup.cpuset() == "1"


def test_v2_mount_root_is_stripped_from_the_path(tree):
    scope = f"/system.slice/docker-{DOCKER_ID}.scope"
    v2_only(tree, path=scope, mount_root=scope)
    tree.files("/sys/fs/cgroup", cpu__max="100000 100000\n")
    cgroup = tree.find()
    assert cgroup.path == "/"
    assert cgroup.quota_cpus() == 1.0


def test_v2_without_cpu_controller_counts_usage_only(tree):
    # the cpu controller not enabled for this cgroup: cpu.stat has usage but no throttling
    v2_only(tree, path="/user.slice")
    tree.files("/sys/fs/cgroup/user.slice", cpu__stat="usage_usec 500000\nuser_usec 1\n")
    counters = tree.counters()
    assert counters == {"nr_periods": None, "nr_throttled": None, "throttled_seconds": None,
                        "usage_seconds": 0.5}


def test_v2_missing_files_read_as_none(tree):
    v2_only(tree, path="/gone")
    cgroup = tree.find()
    assert cgroup.version == 2
    assert (cgroup.quota_cpus(), cgroup.cpuset(), cgroup.cpu_stat(), cgroup.usage_seconds()) \
        == (None, None, None, None)


# ---------------------------------------------------------------------------------------------
# hybrid layouts and odd machines


def hybrid(tree, path="/"):
    """v1 controllers plus a v2 mount at /sys/fs/cgroup/unified (systemd's hybrid mode)."""
    v1_apart(tree, path=path)
    lines = (tree.root / "proc/self/cgroup").read_text()
    tree.proc_cgroup(*lines.splitlines(), f"0::{path}")
    tree.mount("/sys/fs/cgroup/unified", fstype="cgroup2", super_options="rw,nsdelegate")


def test_hybrid_prefers_v1_where_the_cpu_controller_is(tree):
    hybrid(tree)
    tree.files("/sys/fs/cgroup/cpu", cpu__cfs_quota_us="100000\n", cpu__cfs_period_us="100000\n")
    tree.files("/sys/fs/cgroup/unified", cpu__max="300000 100000\n", cpu__stat=V2_CPU_STAT)
    cgroup = tree.find()
    assert cgroup.version == 1
    assert cgroup.quota_cpus() == 1.0


def test_hybrid_with_only_named_v1_hierarchies_uses_v2(tree):
    tree.proc_cgroup("1:name=systemd:/", "0::/")
    tree.mount("/sys/fs/cgroup/systemd", super_options="rw,xattr,name=systemd")
    tree.mount("/sys/fs/cgroup/unified", fstype="cgroup2", super_options="rw")
    tree.files("/sys/fs/cgroup/unified", cpu__max="50000 100000\n")
    cgroup = tree.find()
    assert cgroup.version == 2
    assert cgroup.quota_cpus() == 0.5


def test_no_proc_files_means_no_cgroup(tree):
    assert tree.find() is None
    assert tree.counters() is None


def test_no_cgroup_mounts_means_no_cgroup(tree):
    tree.proc_cgroup("0::/")
    tree._write("proc/self/mountinfo", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")
    assert tree.find() is None


def test_mount_point_with_a_space_is_unescaped(tree):
    tree.proc_cgroup("0::/")
    tree._write("proc/self/mountinfo",
                "30 25 0:30 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n")
    tree.files("/sys/fs/my cgroup", cpu__max="100000 100000\n")
    assert tree.find().quota_cpus() == 1.0


# ---------------------------------------------------------------------------------------------
# counters


def test_cpu_counters_snapshot_a_v1_cgroup(tree):
    v1_together(tree)
    tree.files("/sys/fs/cgroup/cpu,cpuacct", cpu__stat=V1_CPU_STAT, cpuacct__usage="4000000000\n")
    assert tree.counters() == {"nr_periods": 40, "nr_throttled": 7, "throttled_seconds": 2.5,
                               "usage_seconds": 4.0}


def test_counters_delta_subtracts_each_counter():
    before = {"nr_periods": 10, "nr_throttled": 2, "throttled_seconds": 0.5, "usage_seconds": 1.0}
    after = {"nr_periods": 25, "nr_throttled": 5, "throttled_seconds": 1.25, "usage_seconds": 3.5}
    assert sysinfo.counters_delta(before, after) == {
        "nr_periods": 15, "nr_throttled": 3, "throttled_seconds": 0.75, "usage_seconds": 2.5}


def test_counters_delta_keeps_only_counters_both_snapshots_hold():
    before = {"nr_periods": None, "usage_seconds": 1.0, "nr_throttled": 1}
    after = {"nr_periods": 9, "usage_seconds": 2.0}
    assert sysinfo.counters_delta(before, after) == {"usage_seconds": 1.0}


@pytest.mark.parametrize("before, after", [(None, {"usage_seconds": 1.0}),
                                           ({"usage_seconds": 1.0}, None), (None, None)])
def test_counters_delta_without_a_snapshot_is_empty(before, after):
    assert sysinfo.counters_delta(before, after) == {}


# ---------------------------------------------------------------------------------------------
# effective CPUs (the loky rule) and seen() on this machine


@pytest.mark.parametrize("affinity_count, quota_cpus, expected", [
    (4, None, 4), (4, 1.5, 2), (4, 2.0, 2), (2, 8.0, 2), (4, 0.2, 1), (1, None, 1), (0, None, 1),
])
def test_effective_cpus_is_affinity_cut_to_the_ceiling_of_the_quota(affinity_count, quota_cpus,
                                                                    expected):
    assert sysinfo.effective_cpus(affinity_count, quota_cpus) == expected


def test_seen_reports_a_fractional_quota_as_ceil_effective_cpus(monkeypatch):
    fake = CgroupV2("/", sysinfo.Hierarchy(folder="/nowhere", mount_folder="/nowhere"))
    monkeypatch.setattr(sysinfo, "find_cgroup", lambda root="/": fake)
    monkeypatch.setattr(CgroupV2, "quota_cpus", lambda self: 1.5)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    view = sysinfo.seen()
    assert view["quota_cpus"] == 1.5
    assert view["effective_cpus"] == 2
    assert view["cgroup"]["version"] == 2
    assert view["cgroup"]["quota_cpus"] == 1.5


def test_seen_never_raises_when_the_cgroup_reader_breaks(monkeypatch):
    def broken(root="/"):
        raise RuntimeError("boom")

    monkeypatch.setattr(sysinfo, "find_cgroup", broken)
    view = sysinfo.seen()
    assert view["cgroup"] == {"version": None, "path": None, "quota_cpus": None, "cpuset": None}
    assert view["effective_cpus"] == len(os.sched_getaffinity(0))
    assert sysinfo.cpu_counters() is None


def test_seen_on_this_machine_matches_what_python_reports():
    view = sysinfo.seen()
    assert set(view) == {"affinity", "os_cpu_count", "process_cpu_count", "pool_default_workers",
                         "quota_cpus", "effective_cpus", "cgroup"}
    assert view["affinity"] == sorted(os.sched_getaffinity(0))
    assert view["os_cpu_count"] == os.cpu_count()
    expected_process_count = os.process_cpu_count() if hasattr(os, "process_cpu_count") else None
    assert view["process_cpu_count"] == expected_process_count
    assert 1 <= view["effective_cpus"] <= len(view["affinity"])
    assert set(view["cgroup"]) == {"version", "path", "quota_cpus", "cpuset"}
    assert view["cgroup"]["quota_cpus"] == view["quota_cpus"]


def test_seen_on_this_machine_finds_a_cgroup_when_linux_has_one():
    if not os.path.exists("/proc/self/cgroup"):
        pytest.skip("no /proc/self/cgroup here")
    cgroup = sysinfo.seen()["cgroup"]
    assert cgroup["version"] in (1, 2)
    if cgroup["cpuset"] is not None:
        # the process's affinity can only be narrower than its cgroup's cpuset
        assert set(os.sched_getaffinity(0)) <= set(sysinfo.parse_cpu_list(cgroup["cpuset"]))


def test_pool_default_workers_matches_a_real_pool():
    expected = sysinfo.seen()["pool_default_workers"]
    with multiprocessing.get_context("spawn").Pool() as pool:
        assert pool._processes == expected


def test_cpu_counters_on_this_machine_grow_with_work():
    before = sysinfo.cpu_counters()
    if before is None or before.get("usage_seconds") is None:
        pytest.skip("this machine shows no cgroup CPU usage")
    sum(i * i for i in range(2_000_000))  # some CPU time for the cgroup to count
    delta = sysinfo.counters_delta(before, sysinfo.cpu_counters())
    assert delta["usage_seconds"] > 0
