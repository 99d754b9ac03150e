"""What changed between the Pythons of a lessons run: the default start method, Pool()'s size
in a cpuset, start costs, the GIL, one sentence each with the figures."""

from lab.analysis.lessons.base import mode, per_python, rows_of
from lab.analysis.lessons.units import duration, short_python, times

def python_changes(trials, summary):
    """One sentence each, with the figures: the default start method, Pool()'s size in a
    cpuset, start costs, per Python of the run (a run of one Python gets its figures too)."""
    if summary is None or summary.empty:
        return []
    pythons = sorted(summary["python"].dropna().unique(),
                     key=lambda v: tuple(int(x) for x in str(v).split(".") if x.isdigit()))
    several = len(pythons) > 1
    out = []
    seen = {}  # python -> the method `default` resolved to
    default = trials[trials["start_method"] == "default"] if "start_method" in trials else trials
    if "check.start_method" in default and len(default):
        seen = {p: mode(default[default["python"] == p]["check.start_method"].tolist())
                for p in pythons}
        seen = {p: m for p, m in seen.items() if m}
        if seen:
            groups = {}
            for python, method in seen.items():
                groups.setdefault(method, []).append(short_python(python))
            text = "; ".join(f"{method} on {', '.join(v)}" for method, v in groups.items())
            changed = (" — 3.14 moved Linux to forkserver, so every Pool() there pays a fork "
                       "server's start" if len(groups) > 1 else "")
            out.append(f"Default start method (the trials' `default`, as resolved): {text}"
                       f"{changed}.")
    sizes = summary.dropna(subset=["pool_default_workers"])
    if len(sizes):
        parts = []
        for python in pythons:
            group = sizes[sizes["python"] == python]
            if group.empty:
                continue
            by_cpus = ", ".join(f"{int(cpus)}-CPU cpuset {int(g['pool_default_workers'].iloc[0])}"
                                for cpus, g in group.groupby("cpus"))
            parts.append(f"{short_python(python)}: {by_cpus}")
        host = mode(summary["os_cpu_count"].tolist())
        out.append(f"Pool()'s default size (workers): {'; '.join(parts)} (os.cpu_count() "
                   f"{host}; 3.13 sizes by os.process_cpu_count(), which follows the cpuset).")
    start = rows_of(summary, lesson="start_cost")
    if len(start):
        parts = []
        for method, group in start.groupby("resolved_start_method"):
            parts.append(f"{method} {per_python(group, 'metric.start_join_us', duration)}")
        text = f"start()+join() of one process: {'; '.join(parts)}"
        defaults = []
        for python in pythons:
            method = seen.get(python)
            group = start[(start["python"] == python)
                          & (start["resolved_start_method"] == method)]
            if method and len(group):
                defaults.append((short_python(python), method,
                                 float(group["metric.start_join_us"].median()),
                                 float(group["metric.pool_first_task_us"].median())))
        if len(defaults) > 1:
            costs = [d[2] for d in defaults]
            text += ("; under each Python's default: " + ", ".join(
                f"{d[0]} {d[1]} {duration(d[2])} (a fresh Pool(1)'s first result "
                f"{duration(d[3])})" for d in defaults)
                + f", {times(max(costs) / min(costs))} apart")
        out.append(text[0].upper() + text[1:] + " (medians over CPU counts).")
    gil = trials.get("check.gil_enabled")
    if gil is not None and gil.notna().any():
        states = {short_python(p): mode(trials[trials["python"] == p]["check.gil_enabled"]
                                         .tolist()) for p in pythons}
        states = {p: s for p, s in states.items() if s is not None}
        out.append("The GIL: " + ", ".join(f"{'enabled' if s else 'disabled'} on {p}"
                                           for p, s in states.items()) + ".")
    if not several:
        out.insert(0, f"One Python in this run ({pythons[0]}); run with --base-image "
                      f"multicore-lab-base:bookworm,multicore-lab-base:trixie,"
                      f"multicore-lab-base:sid to set 3.11, 3.13 and 3.14 side by side.")
    return out
