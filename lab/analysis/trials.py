"""raw.jsonl -> pandas, for every family: one row per trial, one row per point.

Statistics are computed over measured trials only: ok, not warm-up. Failed and warm-up trials stay
in the raw data and are counted in the summary.
"""

from pathlib import Path

import pandas as pd

from lab import records
from lab.analysis import stats

POINT_COLUMNS = ["point_id", "experiment", "variant", "limit", "cpus", "quota", "placement",
                 "workers", "start_method", "backend", "python", "image", "host"]


def trials_frame(records):
    """One row per trial; metric values flattened to metric.<name> columns, params to
    param.<name>, the scalar facts a trial checked to check.<name>; `outlier` flags a measured
    trial outside its point's Tukey fences."""
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k not in ("metrics", "seen", "params", "check")}
        for name, metric in (record.get("metrics") or {}).items():
            row[f"metric.{name}"] = metric.get("value") if isinstance(metric, dict) else metric
        for name, value in (record.get("params") or {}).items():
            row[f"param.{name}"] = value
        for name, value in (record.get("check") or {}).items():  # what the trial verified
            if value is None or isinstance(value, (str, int, float, bool)):
                row[f"check.{name}"] = value
        seen = record.get("seen") or {}
        for name in ("effective_cpus", "pool_default_workers", "os_cpu_count", "quota_cpus"):
            row[f"seen.{name}"] = seen.get(name)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # ints and None (Pool()'s default) as they are: a float column would print 2.0 and nan
    frame["workers"] = pd.Series([r.get("workers") for r in records], dtype=object,
                                 index=frame.index)
    frame["outlier"] = outlier_flags(frame)
    return frame


def load_trials(folder, warn=print):
    """The trials of a run folder (a RunFolder or its path), every line validated."""
    raw_path = getattr(folder, "raw_path", None) or Path(folder) / "raw.jsonl"
    return trials_frame(records.read_records(raw_path, warn=warn))


def measured(trials):
    return trials[(trials["ok"] == True) & (trials["warmup"] == False)]  # noqa: E712 (pandas)


def outlier_flags(trials):
    """True for a measured trial whose seconds lie outside its point's Tukey fences (see
    lab.stats); False for every other trial. Flagged trials stay in every statistic."""
    flags = pd.Series(False, index=trials.index)
    if trials.empty or not {"ok", "warmup", "seconds", "point_id"} <= set(trials.columns):
        return flags
    good = measured(trials)
    for _, seconds in good.groupby("point_id")["seconds"]:
        flags.loc[seconds.index] = stats.tukey_outliers(seconds).to_numpy()
    return flags


def samples(trials, column="seconds"):
    """{point_id: array of the measured trials' values}: what intervals and tests resample."""
    good = measured(trials)
    return {point: values.dropna().to_numpy(float)
            for point, values in good.groupby("point_id")[column]}


def point_stats(trials):
    """Per point, over measured trials of `seconds`: n, median, quartiles, IQR, min, max, mean,
    CV, the median's order-statistic interval and its coverage, the Tukey outlier count, and the
    failed count (lab.stats says how each is computed)."""
    keys = [c for c in POINT_COLUMNS if c in trials.columns]
    good = measured(trials)
    rows = {point: stats.describe(seconds)
            for point, seconds in good.groupby("point_id")["seconds"]}
    stats_frame = pd.DataFrame.from_dict(rows, orient="index",
                                         columns=list(stats.describe([]).keys()))
    failed = trials[(trials["ok"] != True) & (trials["warmup"] == False)]  # noqa: E712
    # A point's parameters as its measured trials ran them (a sized count, not the warm-up's)
    first = trials.sort_values("warmup", kind="stable").drop_duplicates("point_id")
    described = first.set_index("point_id")[keys[1:]]
    for column in (c for c in trials.columns if c.startswith("param.")):
        described[column] = first.set_index("point_id")[column]
    summary = described.join(stats_frame, how="left").reset_index()
    summary["n"] = summary["n"].fillna(0).astype(int)
    summary["outliers"] = summary["outliers"].fillna(0).astype(int)
    summary["failed"] = failed.groupby("point_id").size().reindex(summary["point_id"]).fillna(
        0).astype(int).to_numpy()
    return summary
