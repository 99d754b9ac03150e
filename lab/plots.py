"""Charts, one function each. They read summaries (pandas) and write PNG and SVG files."""

import matplotlib

matplotlib.use("Agg")  # files only: no display on lab machines or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lab import fits, results  # noqa: E402

FORMATS = ("png", "svg")


def _save(figure, folder, name):
    paths = []
    for fmt in FORMATS:
        path = folder / f"{name}.{fmt}"
        figure.savefig(path, dpi=130, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths


def speedup_chart(summary, trials, folder, title_suffix=""):
    """Measured speedup against CPUs: ideal line, the repeats' spread, the Amdahl fit per curve."""
    figure, axes = plt.subplots(figsize=(7.5, 5))
    spread = results.per_trial_speedups(trials, summary)
    max_cpus = max(2, int(summary["cpus"].max()))
    xs = np.linspace(1, max_cpus, 100)
    axes.plot(xs, xs, color="grey", linestyle="--", linewidth=1, label="ideal (speedup = CPUs)")
    for index, (name, curve) in enumerate(results.strong_curves(summary)):
        color = f"C{index}"
        medians = curve["speedup"]
        per_point = spread[spread["point_id"].isin(curve["point_id"])]
        low = per_point.groupby("cpus")["speedup"].min().reindex(curve["cpus"]).to_numpy()
        high = per_point.groupby("cpus")["speedup"].max().reindex(curve["cpus"]).to_numpy()
        yerr = np.vstack([medians.to_numpy() - low, high - medians.to_numpy()]).clip(min=0)
        axes.errorbar(curve["cpus"], medians, yerr=yerr, marker="o", capsize=4, color=color,
                      label=f"{name}: median, min-max of repeats")
        s = curve["amdahl_serial_fraction"].iloc[0]
        if np.isfinite(s):
            axes.plot(xs, fits.amdahl_speedup(xs, s), color=color, linestyle=":",
                      label=f"{name}: Amdahl fit, s = {s:.3f}")
        if name.startswith("seed"):
            caps = [fits.seed_speedup_cap(c) for c in range(1, max_cpus + 1)]
            axes.step(range(1, max_cpus + 1), caps, where="post", color=color, alpha=0.5,
                      label="seed: cap 6 / ceil(6 / c)")
    axes.set_xlabel("CPUs (cpuset size)")
    axes.set_ylabel("speedup (median T at 1 CPU / median T)")
    axes.set_title(f"Strong scaling: speedup{title_suffix}")
    axes.set_xticks(range(1, max_cpus + 1))
    axes.set_xlim(0.8, max_cpus + 0.2)
    axes.set_ylim(0, max_cpus * 1.1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return _save(figure, folder, "speedup")


def efficiency_chart(summary, folder, title_suffix=""):
    """Efficiency (speedup / CPUs; weak: T(1) / T(c)) per variant against CPUs."""
    figure, axes = plt.subplots(figsize=(7.5, 5))
    rows = summary[(summary["limit"] == "cpuset") & summary["efficiency"].notna()
                   & (summary["workers"] == summary["cpus"])]
    several = rows["python"].nunique() > 1
    for index, ((variant, method, python), curve) in enumerate(
            rows.groupby(["variant", "start_method", "python"])):
        curve = curve.sort_values("cpus")
        axes.plot(curve["cpus"], curve["efficiency"], marker="o", color=f"C{index}",
                  label=f"{variant} ({method}{', Python ' + python if several else ''})")
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="ideal (1.0)")
    max_cpus = max(2, int(summary["cpus"].max()))
    axes.set_xticks(range(1, max_cpus + 1))
    axes.set_xlabel("CPUs (cpuset size)")
    axes.set_ylabel("efficiency (speedup / CPUs)")
    axes.set_ylim(0, 1.2)
    axes.set_title(f"Parallel efficiency{title_suffix}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")
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
        left.plot(cpuset["resources"], cpuset["speedup"], marker="o", linestyle=style, color="C0",
                  label=f"cpuset, workers = CPUs{tag}")
        quota = rows[rows["limit"] == "quota"]
        sized = quota[quota["workers"].notna()]
        sized = sized[sized["workers"] == np.ceil(sized["quota"])]
        default = quota[quota["workers"].isna()]
        for color, name, curve in (("C1", "quota, workers = effective CPUs", sized),
                                   ("C3", "quota, workers = Pool() default", default)):
            curve = curve.sort_values("resources")
            left.plot(curve["resources"], curve["speedup"], marker="s", linestyle=style,
                      color=color, label=f"{name}{tag}")
            bar_groups.append((f"{name.split(', ')[1]}{tag}", curve, color))
    width = 0.8 / max(1, len(bar_groups))
    quotas = sorted(view.loc[view["limit"] == "quota", "quota"].dropna().unique())
    for index, (name, curve, color) in enumerate(bar_groups):
        positions = [quotas.index(q) + (index - (len(bar_groups) - 1) / 2) * width
                     for q in curve["quota"]]
        right.bar(positions, curve["throttled_median_s"].fillna(0), width=width, color=color,
                  alpha=0.5 + 0.5 * (index % 2), label=name)
    right.set_xticks(range(len(quotas)), [f"{q:g}" for q in quotas])
    right.set_xlabel("CFS quota (CPUs, Docker --cpus)")
    right.set_ylabel("throttled time per trial (s, median)")
    right.set_title("CFS throttling under a quota")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, axis="y")
    left.set_xlabel("CPUs: cpuset size, or quota in CPUs")
    left.set_ylabel("speedup (median T at 1 CPU / median T)")
    left.set_title(f"cpuset against quota{title_suffix}")
    left.set_xlim(0, top + 0.2)
    left.set_ylim(0, top * 1.1)
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left")
    return _save(figure, folder, "quota")
