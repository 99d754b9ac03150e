"""What every chart shares: PNG and SVG output, interval whiskers, and the generic ratio chart
of `invoke compare`. Family charts live beside it (scaling_charts.py, ipc_charts.py)."""

import matplotlib

matplotlib.use("Agg")  # files only: no display on lab machines or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FORMATS = ("png", "svg")


def save(figure, folder, name):
    paths = []
    for fmt in FORMATS:
        path = folder / f"{name}.{fmt}"
        figure.savefig(path, dpi=130, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths


def interval_error(values, low, high):
    """Error bar lengths below and above `values` from interval bounds (0 where unknown)."""
    values = np.asarray(values, float)
    below = np.nan_to_num(values - np.asarray(low, float), nan=0.0)
    above = np.nan_to_num(np.asarray(high, float) - values, nan=0.0)
    return np.vstack([below, above]).clip(min=0)


def compare_ratio_chart(table, folder, subtitle=""):
    """Ratio B/A of each common point's medians with its 95% bootstrap interval; 1 = the same.
    Filled: the Mann-Whitney test, Holm-adjusted over all points, calls it significant."""
    rows = table.iloc[::-1]
    height = max(2.8, 0.32 * len(rows) + 1.6)
    figure, axes = plt.subplots(figsize=(9, height))
    ys = np.arange(len(rows))
    ratios = rows["ratio_b_over_a"].to_numpy(float)
    errors = interval_error(ratios, rows["ratio_ci_low"], rows["ratio_ci_high"])
    significant = rows["significant"].to_numpy(bool)
    for mask, face, name in ((significant, "C3", "significant (Mann-Whitney, Holm-adjusted p < 0.05)"),
                             (~significant, "white", "not significant")):
        if mask.any():
            axes.errorbar(ratios[mask], ys[mask], xerr=errors[:, mask], fmt="o", color="C3",
                          markerfacecolor=face, capsize=3, label=name)
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="1 = no change")
    axes.set_yticks(ys, [f"{label} [{measure}]" for label, measure
                         in zip(rows["label"], rows["measure"])], fontsize=8)
    axes.set_xlabel("ratio B / A of the medians (seconds: < 1 is faster; messages/s: > 1 is "
                    "faster)")
    axes.set_title(f"B against A, point by point\n{subtitle}", fontsize=10)
    axes.grid(alpha=0.3, axis="x")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, folder, "compare_ratio")
