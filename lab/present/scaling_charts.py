"""The scale family's charts, one function each: speedup, efficiency, quota, and the speedup
curves of two runs overlaid."""

import matplotlib

matplotlib.use("Agg")  # files only: no display on lab machines or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lab.analysis import ceiling as ceilings, fits, scaling as results  # noqa: E402
from lab.present.charts import interval_error as _interval_error, save as _save  # noqa: E402

def speedup_chart(summary, trials, folder, title_suffix=""):
    """Measured speedup against CPUs: the ideal line, each point's median with its 95% bootstrap
    interval, every trial as a dot, and per curve the fits: Amdahl (dotted) and USL (dashed) on
    strong curves, Gustafson (dash-dot) on the weak one's scaled speedup."""
    figure, axes = plt.subplots(figsize=(9, 5.2))
    spread = results.per_trial_speedups(trials, summary)
    max_cpus = max(2, int(summary["cpus"].max()))
    xs = np.linspace(1, max_cpus, 100)
    axes.plot(xs, xs, color="grey", linestyle="--", linewidth=1, label="ideal (speedup = CPUs)")
    curves = [(name, curve, "speedup") for name, curve in results.strong_curves(summary)]
    curves += [(name, curve, "scaled_speedup") for name, curve in results.weak_curves(summary)]
    top = _ceiling_curves(axes, summary, spread, max_cpus)
    unfitted = {}  # why USL was not fitted -> the curves it was not fitted on
    for index, (name, curve, column) in enumerate(curves):
        color = f"C{index}"
        weak = column == "scaled_speedup"
        medians = curve[column].to_numpy(float)
        if np.isfinite(medians).any():
            top = max(top, float(np.nanmax(curve[f"{column}_ci_high"].fillna(0))),
                      float(np.nanmax(medians)))
        dots = spread[spread["point_id"].isin(curve["point_id"])]
        if not weak and len(dots):
            jitter = 0.04 * (index - (len(curves) - 1) / 2)
            axes.scatter(dots["cpus"] + jitter, dots["speedup"], s=10, color=color, alpha=0.35,
                         linewidths=0)
        label = (f"{name}: scaled speedup c·T(1)/T(c)" if weak
                 else f"{name}: median, 95% interval")
        axes.errorbar(curve["cpus"], medians,
                      yerr=_interval_error(medians, curve[f"{column}_ci_low"],
                                           curve[f"{column}_ci_high"]),
                      marker="s" if weak else "o", capsize=4, color=color, linewidth=0.9,
                      label=label)
        if weak:
            s = curve["gustafson_serial_fraction"].iloc[0]
            if np.isfinite(s):
                axes.plot(xs, fits.gustafson_speedup(xs, s), color=color, linestyle="-.",
                          label=f"{name}: Gustafson {_how(curve, 'gustafson')}, s = {s:.3f}")
            continue
        s = curve["amdahl_serial_fraction"].iloc[0]
        if np.isfinite(s):
            axes.plot(xs, fits.amdahl_speedup(xs, s), color=color, linestyle=":",
                      label=f"{name}: Amdahl {_how(curve, 'amdahl')}, s = {s:.3f}")
        sigma, kappa = curve["usl_sigma"].iloc[0], curve["usl_kappa"].iloc[0]
        if np.isfinite(sigma) and np.isfinite(kappa):
            axes.plot(xs, fits.usl_speedup(xs, sigma, kappa), color=color, linestyle="--",
                      linewidth=1.2,
                      label=f"{name}: USL {_how(curve, 'usl')}, σ = {sigma:.3f}, κ = {kappa:.4f}")
        else:  # said on the chart too (below): a missing curve must not look like a forgotten one
            unfitted.setdefault(str(curve["usl"].iloc[0]), []).append((name, color))
        if name.startswith("seed"):
            caps = [fits.seed_speedup_cap(c) for c in range(1, max_cpus + 1)]
            axes.step(range(1, max_cpus + 1), caps, where="post", color=color, alpha=0.5,
                      label="seed: cap 6 / ceil(6 / c)")
    _say_unfitted(axes, unfitted, sum(column == "speedup" for _, _, column in curves))
    if len(spread):
        axes.scatter([], [], s=10, color="grey", alpha=0.5, label="one trial (dot)")
    kinds = " and ".join(k for k, c in (("strong", "speedup"), ("weak", "scaled_speedup"))
                         if any(column == c for _, _, column in curves))
    axes.set_title(f"{kinds.capitalize() or 'Strong'} scaling: speedup{title_suffix}")
    _speedup_axes(axes, max_cpus, top)
    return _save(figure, folder, "speedup")


def _say_unfitted(axes, unfitted, strong_curves):
    """One legend line per reason USL was not fitted: once for all when every strong curve has
    the same reason (ten curves would otherwise repeat one sentence ten times), else per curve."""
    for reason, named in unfitted.items():
        if len(named) > 1 and len(named) == strong_curves:
            axes.plot([], [], color="grey", linestyle="--", linewidth=1.2, alpha=0.4,
                      label=f"USL, every curve: {reason}")
            continue
        for name, color in named:
            axes.plot([], [], color=color, linestyle="--", linewidth=1.2, alpha=0.4,
                      label=f"{name}: USL {reason}")


CEILING_STYLES = ("-", "--", "-.", ":")


def _ceiling_curves(axes, summary, spread, max_cpus):
    """The measured ceiling per host beside the ideal line (black, triangles, every trial a
    dot); returns the chart's top so far."""
    top = max_cpus
    for index, (name, curve) in enumerate(ceilings.ceiling_curves(summary)):
        medians = curve["speedup"].to_numpy(float)
        if np.isfinite(medians).any():
            top = max(top, float(np.nanmax(curve["speedup_ci_high"].fillna(0))),
                      float(np.nanmax(medians)))
        dots = spread[spread["point_id"].isin(curve["point_id"])]
        if len(dots):
            axes.scatter(dots["cpus"] - 0.06, dots["speedup"], s=10, color="black", alpha=0.3,
                         linewidths=0, marker="^")
        axes.errorbar(curve["cpus"], medians,
                      yerr=_interval_error(medians, curve["speedup_ci_low"],
                                           curve["speedup_ci_high"]),
                      marker="^", capsize=4, color="black", alpha=0.8, linewidth=1.4,
                      linestyle=CEILING_STYLES[index % len(CEILING_STYLES)],
                      label=f"{name}: N pinned spinners' work / one's, 95% interval")
    return top


def _how(curve, law):
    """'fit', or 'through the points' when the law was solved from one point per parameter."""
    exact = curve.get(f"{law}_exact")
    return "through the points (exact, not a fit)" if exact is not None and bool(
        exact.iloc[0]) else "fit"


def _speedup_axes(axes, max_cpus, top):
    """Axes, ticks, limits, grid and legend shared by every speedup chart."""
    axes.set_xlabel("CPUs (cpuset size)")
    axes.set_ylabel("speedup, × (median T(1 CPU) / median T(c))")
    axes.set_xticks(range(1, max_cpus + 1))
    axes.set_xlim(0.8, max_cpus + 0.2)
    axes.set_ylim(0, max(max_cpus, top) * 1.1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def efficiency_chart(summary, folder, title_suffix=""):
    """Efficiency (speedup / CPUs; weak: T(1) / T(c)) per variant against CPUs, with the 95%
    bootstrap interval of the speedup it comes from; strong curves also against the measured
    ceiling (speedup / ceiling, dashed, triangles) where the run measured it."""
    figure, axes = plt.subplots(figsize=(9, 5.2))
    rows = summary[(summary["limit"] == "cpuset") & summary["efficiency"].notna()
                   & (summary["workers"] == summary["cpus"])]
    several = rows["python"].nunique() > 1
    hosts = "host" in rows.columns and rows["host"].astype(str).nunique() > 1
    keys = ["variant", "start_method", "python"] + (["host"] if hosts else [])
    groups = list(rows.groupby(keys))
    for index, (values, curve) in enumerate(groups):
        variant, method, python = values[:3]
        # as the speedup chart names its curves: a pool in one process has no start method
        method = "one process" if variant in results.IN_ONE_PROCESS else method
        on = f", host {values[3]}" if hosts else ""
        curve = curve.sort_values("cpus")
        column = "scaled_speedup" if variant == "weak" else "speedup"
        cpus = curve["cpus"].astype(float)
        jitter = 0.02 * (index - (len(groups) - 1) / 2)  # equal curves (threads at 0.5) both show
        axes.errorbar(curve["cpus"] + jitter, curve["efficiency"],
                      yerr=_interval_error(curve["efficiency"], curve[f"{column}_ci_low"] / cpus,
                                           curve[f"{column}_ci_high"] / cpus),
                      marker="o", capsize=4, color=f"C{index}",
                      label=f"{variant} ({method}{', Python ' + python if several else ''}{on})")
        against = curve["of_ceiling"] if "of_ceiling" in curve else None
        if against is not None and against.notna().any():  # speedup / what the CPUs deliver
            axes.plot(curve["cpus"] + jitter, against, marker="^", linestyle="--",
                      color=f"C{index}", alpha=0.7, label=f"{variant} ({method}{on}): against the measured ceiling")
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="ideal (1.0)")
    max_cpus = max(2, int(summary["cpus"].max()))
    axes.set_xticks(range(1, max_cpus + 1))
    axes.set_xlabel("CPUs (cpuset size)")
    axes.set_ylabel("efficiency, fraction (speedup / CPUs)")
    top = float(np.nanmax(axes.get_ylim()))
    axes.set_ylim(0, max(1.2, min(top, 2.0)))
    axes.set_title(f"Parallel efficiency{title_suffix}\nerror bars: 95% bootstrap interval",
                   fontsize=11)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, folder, "efficiency")


def quota_chart(view, folder, title_suffix=""):
    """cpuset-limited against quota-limited speedup, and the CFS throttling each quota point saw."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    strong = view[view["variant"] == "strong"]
    top = max(2.0, float(strong["resources"].max()))
    xs = np.linspace(0.25, top, 50)
    left.plot(xs, xs, color="grey", linestyle="--", linewidth=1, label="ideal")
    several = strong["python"].nunique() > 1
    bar_groups = []
    for p_index, (python, rows) in enumerate(strong.groupby("python")):
        tag = f", Python {python}" if several else ""
        style = ["-", "-."][p_index % 2]
        cpuset = rows[(rows["limit"] == "cpuset") & (rows["workers"] == rows["cpus"])]
        cpuset = cpuset.sort_values("resources")
        left.errorbar(cpuset["resources"], cpuset["speedup"], capsize=3,
                      yerr=_interval_error(cpuset["speedup"], cpuset["speedup_ci_low"],
                                           cpuset["speedup_ci_high"]),
                      marker="o", linestyle=style, color="C0",
                      label=f"cpuset, workers = CPUs{tag}")
        quota = rows[rows["limit"] == "quota"]
        sized = quota[quota["workers"].notna()]
        sized = sized[sized["workers"] == np.ceil(sized["quota"])]
        default = quota[quota["workers"].isna()]
        for color, name, curve in (("C1", "quota, workers = effective CPUs", sized),
                                   ("C3", "quota, workers = Pool() default", default)):
            curve = curve.sort_values("resources")
            left.errorbar(curve["resources"], curve["speedup"], capsize=3,
                          yerr=_interval_error(curve["speedup"], curve["speedup_ci_low"],
                                               curve["speedup_ci_high"]),
                          marker="s", linestyle=style, color=color, label=f"{name}{tag}")
            bar_groups.append((f"{name.split(', ')[1]}{tag}", curve, color, p_index))
    width = 0.8 / max(1, len(bar_groups))
    quotas = sorted(view.loc[view["limit"] == "quota", "quota"].dropna().unique())
    for index, (name, curve, color, p_index) in enumerate(bar_groups):
        positions = [quotas.index(q) + (index - (len(bar_groups) - 1) / 2) * width
                     for q in curve["quota"]]
        right.bar(positions, curve["throttled_median_s"].fillna(0), width=width, color=color,
                  alpha=0.5 + 0.5 * (index % 2), hatch="//" if p_index else None,
                  edgecolor="black" if p_index else None, linewidth=0.3, label=name)
    right.set_xticks(range(len(quotas)), [f"{q:g}" for q in quotas])
    right.set_xlabel("CFS quota (CPUs, Docker --cpus)")
    right.set_ylabel("throttled time per trial (s, median)")
    right.set_title("CFS throttling under a quota" + ("\nhatched: the second Python"
                                                     if several else ""))
    right.legend(fontsize=8)
    right.grid(alpha=0.3, axis="y")
    left.set_xlabel("CPUs: cpuset size, or quota in CPUs")
    left.set_ylabel("speedup (median T at 1 CPU / median T)")
    left.set_title(f"cpuset against quota{title_suffix}\nerror bars: 95% bootstrap interval",
                   fontsize=10)
    left.set_xlim(0, top + 0.2)
    highest = float(np.nanmax(strong["speedup_ci_high"].to_numpy(float), initial=0.0))
    left.set_ylim(0, min(max(top, highest) * 1.05 + 0.05, top * 2))
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left")
    return _save(figure, folder, "quota")


def compare_speedup_chart(summary_a, summary_b, label_a, label_b, folder):
    """Both runs' speedup curves on one chart: A solid with filled markers, B dashed with open
    ones, the same colour for the same curve; error bars: 95% bootstrap intervals."""
    figure, axes = plt.subplots(figsize=(9, 5.2))
    max_cpus = max(2, int(max(summary_a["cpus"].max(), summary_b["cpus"].max())))
    xs = np.linspace(1, max_cpus, 100)
    axes.plot(xs, xs, color="grey", linestyle=":", linewidth=1, label="ideal (speedup = CPUs)")
    names = {}
    top = max_cpus
    for run_index, (summary, label) in enumerate(((summary_a, label_a), (summary_b, label_b))):
        curves = [(n, c, "speedup") for n, c in results.strong_curves(summary)]
        curves += [(n, c, "scaled_speedup") for n, c in results.weak_curves(summary)]
        for name, curve, column in curves:
            base = name.split(" (")[0]
            color = names.setdefault(base, f"C{len(names)}")
            medians = curve[column].to_numpy(float)
            if np.isfinite(medians).any():
                top = max(top, float(np.nanmax(curve[f"{column}_ci_high"].fillna(0))))
            shift = 0.03 * (1 if run_index else -1)  # keep the two runs' error bars apart
            axes.errorbar(curve["cpus"] + shift, medians,
                          yerr=_interval_error(medians, curve[f"{column}_ci_low"],
                                               curve[f"{column}_ci_high"]),
                          marker="s" if column == "scaled_speedup" else "o", capsize=4,
                          color=color, linestyle="--" if run_index else "-",
                          markerfacecolor="white" if run_index else color,
                          label=f"{label}: {base}"
                                + (" (scaled speedup)" if column == "scaled_speedup" else ""))
    axes.set_title("Speedup of both runs\nsolid: A, dashed: B; error bars: 95% bootstrap interval",
                   fontsize=11)
    _speedup_axes(axes, max_cpus, top)
    return _save(figure, folder, "compare_speedup")
