"""The process's own cgroup, v1, v2 or hybrid, behind one interface (`Cgroup`, found by
`find_cgroup` from /proc/self/cgroup and /proc/self/mountinfo): quota, cpuset, CPU counters.

Standard library only (runs in the trial). Reading never raises: a file that is missing or
unreadable gives None for the value it would have given."""

import os
from dataclasses import dataclass

from lab.sysinfo.cpulists import format_cpu_list, parse_cpu_list

# ---------------------------------------------------------------------------------------------
# Reading small kernel files without raising


def _read_text(path):
    """The file's text, or None when it is missing, unreadable or not text."""
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):  # missing, a folder, permission denied, binary
        return None


def _read_int(path):
    text = _read_text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _read_key_values(path):
    """A "key value" per line file such as cpu.stat, as {key: int}; None if unreadable."""
    text = _read_text(path)
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            try:
                values[fields[0]] = int(fields[1])
            except ValueError:
                pass
    return values


def _normalized_cpuset(text):
    """A cpuset file's text as a canonical CPU list, or None if unreadable, empty or garbage."""
    if text is None:
        return None
    try:
        cpus = parse_cpu_list(text)
    except ValueError:
        return None
    return format_cpu_list(cpus) if cpus else None


def _folders_up_to(folder, top_folder):
    """`folder`, its parent, ... up to and including `top_folder` (just `folder` if not below it)."""
    folder, top_folder = os.path.normpath(folder), os.path.normpath(top_folder)
    yield folder
    while folder != top_folder and folder.startswith(top_folder.rstrip(os.sep) + os.sep):
        folder = os.path.dirname(folder)
        yield folder


# ---------------------------------------------------------------------------------------------
# One interface over cgroup v1 and v2


@dataclass(frozen=True)
class Hierarchy:
    """Where one cgroup hierarchy shows this process's cgroup on disk."""

    folder: str  # the process's cgroup folder
    mount_folder: str  # the mount point; the top of what this process can read


class Cgroup:
    """The process's cgroup, whatever the version. Every reader returns None when it can't read."""

    version = None

    def __init__(self, path):
        self.path = path  # the process's cgroup path, relative to the mount's root

    def quota_cpus(self):
        """CFS quota in CPUs (quota / period, e.g. 1.5), or None when there is no quota.

        The tightest quota of this cgroup and its ancestors (as far as the mount shows them)
        applies, so all of them are read.
        """
        quotas = [quota for folder in self._cpu_folders_up() if
                  (quota := self._quota_cpus_in(folder)) is not None]
        return min(quotas) if quotas else None

    def cpuset(self):
        """The CPUs the cgroup may run on, as a CPU list string ("0-3,8-11"), or None."""
        raise NotImplementedError

    def cpu_stat(self):
        """{nr_periods, nr_throttled, throttled_seconds} from cpu.stat; missing values are None."""
        raise NotImplementedError

    def usage_seconds(self):
        """Total CPU time used by the cgroup's processes, in seconds, or None."""
        raise NotImplementedError

    def _cpu_folders_up(self):
        raise NotImplementedError

    def _quota_cpus_in(self, folder):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(path={self.path!r})"


def _quota_ratio(quota_us, period_us):
    if quota_us is None or period_us is None or quota_us < 0 or period_us <= 0:
        return None  # -1 (v1) means no quota; a period of 0 would be a broken file
    return quota_us / period_us


class CgroupV2(Cgroup):
    version = 2

    def __init__(self, path, hierarchy):
        super().__init__(path)
        self.hierarchy = hierarchy

    def _cpu_folders_up(self):
        return _folders_up_to(self.hierarchy.folder, self.hierarchy.mount_folder)

    def _quota_cpus_in(self, folder):
        # cpu.max: "$MAX $PERIOD" in microseconds, "max 100000" when there is no quota
        text = _read_text(os.path.join(folder, "cpu.max"))
        fields = text.split() if text is not None else []
        if len(fields) != 2 or fields[0] == "max":
            return None
        try:
            return _quota_ratio(int(fields[0]), int(fields[1]))
        except ValueError:
            return None

    def cpuset(self):
        return _normalized_cpuset(_read_text(os.path.join(self.hierarchy.folder,
                                                          "cpuset.cpus.effective")))

    def _stat(self):
        return _read_key_values(os.path.join(self.hierarchy.folder, "cpu.stat"))

    def cpu_stat(self):
        stat = self._stat()
        if stat is None:
            return None
        throttled_usec = stat.get("throttled_usec")
        return {
            "nr_periods": stat.get("nr_periods"),
            "nr_throttled": stat.get("nr_throttled"),
            "throttled_seconds": throttled_usec / 1e6 if throttled_usec is not None else None,
        }

    def usage_seconds(self):
        usage_usec = (self._stat() or {}).get("usage_usec")
        return usage_usec / 1e6 if usage_usec is not None else None


class CgroupV1(Cgroup):
    """cgroup v1: the cpu, cpuacct and cpuset controllers may each sit on their own mount."""

    version = 1

    def __init__(self, path, hierarchies):
        super().__init__(path)
        self.hierarchies = hierarchies  # controller name ("cpu", "cpuacct", "cpuset") -> Hierarchy

    def _file(self, controller, name):
        hierarchy = self.hierarchies.get(controller)
        return os.path.join(hierarchy.folder, name) if hierarchy else None

    def _cpu_folders_up(self):
        hierarchy = self.hierarchies.get("cpu")
        return _folders_up_to(hierarchy.folder, hierarchy.mount_folder) if hierarchy else []

    def _quota_cpus_in(self, folder):
        return _quota_ratio(_read_int(os.path.join(folder, "cpu.cfs_quota_us")),
                            _read_int(os.path.join(folder, "cpu.cfs_period_us")))

    def cpuset(self):
        if "cpuset" not in self.hierarchies:
            return None
        # cpuset.effective_cpus is missing on old kernels and some mounts: cpuset.cpus then
        for name in ("cpuset.effective_cpus", "cpuset.cpus"):
            cpus = _normalized_cpuset(_read_text(self._file("cpuset", name)))
            if cpus is not None:
                return cpus
        return None

    def cpu_stat(self):
        path = self._file("cpu", "cpu.stat")
        stat = _read_key_values(path) if path else None
        if stat is None:
            return None
        throttled_ns = stat.get("throttled_time")
        return {
            "nr_periods": stat.get("nr_periods"),
            "nr_throttled": stat.get("nr_throttled"),
            "throttled_seconds": throttled_ns / 1e9 if throttled_ns is not None else None,
        }

    def usage_seconds(self):
        path = self._file("cpuacct", "cpuacct.usage")
        usage_ns = _read_int(path) if path else None
        return usage_ns / 1e9 if usage_ns is not None else None


# ---------------------------------------------------------------------------------------------
# Finding the process's cgroup: /proc/self/cgroup + /proc/self/mountinfo


@dataclass(frozen=True)
class Mount:
    root: str  # the folder of the hierarchy that is mounted (field 4)
    mount_point: str  # where it is mounted (field 5)
    fstype: str
    super_options: tuple


def _unescape_mountinfo(field):
    r"""mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...)."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def _parse_mountinfo(text):
    """The cgroup and cgroup2 mounts listed in a /proc/<pid>/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        # "36 35 98:0 /root /mnt opts [optional fields...] - fstype source super_options"
        before, separator, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not separator or len(fields) < 6 or len(tail) < 3:
            continue
        if tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(root=_unescape_mountinfo(fields[3]),
                            mount_point=_unescape_mountinfo(fields[4]),
                            fstype=tail[0], super_options=tuple(tail[2].split(","))))
    return mounts


def _parse_proc_cgroup(text):
    """/proc/<pid>/cgroup as ({v1 controller: path}, v2 path or None)."""
    v1_paths, v2_path = {}, None
    for line in text.splitlines():
        # "3:cpu,cpuacct:/docker/<id>" (v1) or "0::/user.slice/..." (v2); a path may hold ':'
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            v2_path = path
        else:
            for controller in controllers.split(","):
                if controller:
                    v1_paths[controller] = path
    return v1_paths, v2_path


def _relative_to_mount_root(cgroup_path, mount_root):
    """Strip the mount's root from a cgroup path.

    Inside a Docker 20.10 container on cgroup v1, /proc/self/cgroup says /docker/<id> while the
    mount's root is /docker/<id>: the container's files lie right at the mount point.
    """
    mount_root = mount_root.rstrip("/")
    if not mount_root or not _holds(mount_root, cgroup_path):
        return cgroup_path
    return cgroup_path[len(mount_root):] or "/"


def _hierarchy(root, mount, cgroup_path):
    """Where `cgroup_path` shows on disk under `mount`, the mount point if that folder is absent.

    The fallback covers namespaces that show a path the mount doesn't have (e.g. /../..).
    """
    mount_folder = os.path.normpath(os.path.join(root, mount.mount_point.lstrip("/")))
    relative = _relative_to_mount_root(cgroup_path, mount.root)
    folder = os.path.normpath(os.path.join(mount_folder, relative.lstrip("/")))
    inside_mount = folder == mount_folder or folder.startswith(mount_folder + os.sep)
    if not inside_mount or not os.path.isdir(folder):
        return Hierarchy(folder=mount_folder, mount_folder=mount_folder), relative
    return Hierarchy(folder=folder, mount_folder=mount_folder), relative


def _best_mount(mounts, cgroup_path):
    """Of several mounts of one hierarchy, prefer one whose root holds the process's cgroup."""
    for mount in mounts:
        if _holds(mount.root, cgroup_path):
            return mount
    return mounts[0] if mounts else None


def _holds(mount_root, cgroup_path):
    mount_root = mount_root.rstrip("/")
    return mount_root == "" or cgroup_path == mount_root or cgroup_path.startswith(mount_root + "/")


def _v1_mounts_of(mounts, controller):
    return [mount for mount in mounts if mount.fstype == "cgroup" and controller in mount.super_options]


def find_cgroup(root="/"):
    """The process's cgroup as a `Cgroup` (CgroupV1 or CgroupV2), or None if none is readable.

    `root` prefixes every path read (/proc/self/..., the mount points), so tests can lay out a
    fake tree. On hybrid layouts (v1 controllers plus a v2 mount at /sys/fs/cgroup/unified) v1
    wins when the cpu controller is on v1: that is where the quota and throttling live.
    """
    proc_cgroup = _read_text(os.path.join(root, "proc/self/cgroup"))
    mountinfo = _read_text(os.path.join(root, "proc/self/mountinfo"))
    if proc_cgroup is None or mountinfo is None:
        return None
    v1_paths, v2_path = _parse_proc_cgroup(proc_cgroup)
    mounts = _parse_mountinfo(mountinfo)

    v1 = _find_v1(root, mounts, v1_paths)
    if v1 is not None and "cpu" in v1.hierarchies:
        return v1
    if v2_path is not None:
        v2_mount = _best_mount([m for m in mounts if m.fstype == "cgroup2"], v2_path)
        if v2_mount is not None:
            hierarchy, relative = _hierarchy(root, v2_mount, v2_path)
            return CgroupV2(relative, hierarchy)
    return v1  # v1 without a cpu controller (cpuset or cpuacct alone) still says something


def _find_v1(root, mounts, v1_paths):
    hierarchies, cpu_relative = {}, None
    for controller in ("cpu", "cpuacct", "cpuset"):
        cgroup_path = v1_paths.get(controller)
        if cgroup_path is None:
            continue
        mount = _best_mount(_v1_mounts_of(mounts, controller), cgroup_path)
        if mount is None:
            continue
        hierarchies[controller], relative = _hierarchy(root, mount, cgroup_path)
        if cpu_relative is None:
            cpu_relative = relative  # the cpu controller's path names the cgroup, else the next
    if not hierarchies:
        return None
    return CgroupV1(cpu_relative, hierarchies)
