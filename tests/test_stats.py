"""Statistics and fits on synthetic data with known answers (no engine, no run folder)."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lab.analysis import fits, scaling as results, stats, trials as trial_frames


# --- the median's interval ---------------------------------------------------------------------

def test_five_trials_give_min_max_at_93_75_percent():
    interval = stats.median_interval([3.0, 1.0, 5.0, 2.0, 4.0])
    assert (interval.low, interval.high) == (1.0, 5.0)
    assert interval.coverage == pytest.approx(1 - 2 / 2 ** 5) == 0.9375
    assert (interval.lower_rank, interval.upper_rank) == (1, 5)


def test_ten_trials_give_the_2nd_to_9th_at_97_85_percent():
    interval = stats.median_interval(range(1, 11))
    assert (interval.low, interval.high) == (2, 9)
    assert interval.coverage == pytest.approx(1 - 2 * 11 / 1024)


@pytest.mark.parametrize("n", range(6, 31))
def test_interval_is_scipys_quantile_test_interval_where_95_percent_is_reachable(n):
    x = np.random.default_rng(n).lognormal(size=n)
    ours = stats.median_interval(x)
    theirs = scipy_stats.quantile_test(x, q=0, p=0.5).confidence_interval(0.95)
    assert (ours.low, ours.high) == (theirs.low, theirs.high)
    assert ours.coverage >= 0.95
    # and it is the narrowest: one rank further in falls below 95%
    assert stats.order_statistic_coverage(n, ours.lower_rank + 1) < 0.95


@pytest.mark.parametrize("n", [5, 10])
def test_interval_covers_the_true_median_as_often_as_it_says(n):
    """2000 seeded samples from a skewed distribution (lognormal, true median 1)."""
    rng = np.random.default_rng(20261126 + n)
    hits, stated = 0, None
    for _ in range(2000):
        interval = stats.median_interval(rng.lognormal(mean=0.0, sigma=1.0, size=n))
        stated = interval.coverage
        hits += interval.low <= 1.0 <= interval.high
    assert abs(hits / 2000 - stated) < 0.02, (hits / 2000, stated)


def test_one_trial_has_no_interval():
    interval = stats.median_interval([2.0])
    assert interval.coverage == 0 and interval.describe().startswith("no interval")


# --- bootstrap, outliers, tests ---------------------------------------------------------------

def test_ratio_interval_is_reproducible_and_holds_the_true_ratio():
    rng = np.random.default_rng(3)
    slow, fast = 10 * rng.lognormal(0, 0.05, 12), 5 * rng.lognormal(0, 0.05, 12)
    first = stats.ratio_interval(slow, fast)
    assert first == stats.ratio_interval(slow, fast)  # seeded: the same report every time
    assert first[0] < 2.0 < first[1]
    assert first[0] < np.median(slow) / np.median(fast) < first[1]
    assert all(math.isnan(v) for v in stats.ratio_interval([1.0], [1.0, 2.0]))


def test_tukey_fences_flag_a_planted_outlier_and_keep_it():
    records = [_record("strong", 1, 1, s, repeat) for repeat, s in
               enumerate([1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 3.0])]
    trials = trial_frames.trials_frame(records)
    assert trials["outlier"].tolist() == [False] * 6 + [True]
    summary = trial_frames.point_stats(trials).iloc[0]
    assert summary["outliers"] == 1 and summary["n"] == 7  # flagged, still counted
    assert summary["max_s"] == 3.0


def test_mann_whitney_tells_apart_what_differs_and_says_when_it_cannot():
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 0.01, 8), rng.normal(1.1, 0.01, 8)
    assert stats.difference(a, b).significant()
    assert not stats.difference(a, rng.normal(1.0, 0.01, 8)).significant()
    assert stats.smallest_p_value(3, 3) == pytest.approx(0.1)
    assert stats.difference([1, 2, 3], [4, 5, 6]).p_value == pytest.approx(0.1)
    assert stats.difference([1, 2, 3], [4, 5, 6]).test.startswith("Mann-Whitney U")


# --- fits --------------------------------------------------------------------------------------

def test_noisy_amdahl_curve_gives_s_back_within_0_01():
    cpus = np.array([1, 2, 4, 8, 16, 32])
    noise = np.random.default_rng(11).normal(1.0, 0.01, len(cpus))
    fit = fits.fit_amdahl(cpus, fits.amdahl_speedup(cpus, 0.1) * noise)
    assert fit.fitted and abs(fit.serial_fraction - 0.1) < 0.01


def test_usl_curve_gives_sigma_and_kappa_back():
    cpus = [1, 2, 4, 8, 16, 32, 64]
    fit = fits.fit_usl(cpus, fits.usl_speedup(cpus, 0.05, 0.002))
    assert fit.fitted
    assert fit.sigma == pytest.approx(0.05, abs=1e-4)
    assert fit.kappa == pytest.approx(0.002, abs=1e-5)
    assert fit.peak_cpus == pytest.approx(math.sqrt(0.95 / 0.002), rel=1e-3)


def test_usl_needs_three_cpu_counts_and_says_why():
    fit = fits.fit_usl([1, 2], [1.0, 1.8])
    assert not fit.fitted and fit.sigma is None
    assert fit.describe() == "not fitted (needs speedups at 3 or more CPU counts, has 2)"


def test_gustafson_scaled_speedups_give_the_serial_fraction_back():
    cpus = [1, 2, 4, 8]
    fit = fits.fit_gustafson(cpus, fits.gustafson_speedup(cpus, 0.2))
    assert fit.fitted and fit.serial_fraction == pytest.approx(0.2, abs=1e-6)
    assert not fits.fit_gustafson([1], [1.0]).fitted


# --- the summary -------------------------------------------------------------------------------

def _record(variant, cpus, workers, seconds, repeat=1, **extra):
    return {"schema": 1, "run_id": "synthetic", "round": repeat,
            "point_id": f"{variant}-{cpus}-{workers}", "experiment": "scaling",
            "variant": variant, "limit": "cpuset", "cpus": cpus, "quota": None,
            "placement": "spread", "workers": workers, "start_method": "fork",
            "backend": "local", "python": "3.x", "image": "local", "params": {"work": 1},
            "ok": True, "warmup": False, "seconds": seconds, "repeat": repeat, "metrics": {},
            "throttled_seconds": 0.0, **extra}


def usl_records(sigma=0.05, kappa=0.02, repeats=5):
    """Strong times following the USL and weak times following Gustafson (s = 0.25), with a
    small deterministic jitter."""
    records = []
    for repeat in range(repeats):
        jitter = 1 + 0.002 * (repeat - repeats // 2)
        for cpus in (1, 2, 4, 8):
            speedup = float(fits.usl_speedup(cpus, sigma, kappa))
            records.append(_record("strong", cpus, cpus, 8.0 / speedup * jitter, repeat))
            scaled = float(fits.gustafson_speedup(cpus, 0.25))
            records.append(_record("weak", cpus, cpus, 2.0 * cpus / scaled * jitter, repeat))
        records.append(_record("serial", 1, 1, 7.5 * jitter, repeat))
    return records


def test_summary_carries_intervals_outliers_and_every_fit():
    summary = results.scaling_summary(trial_frames.trials_frame(usl_records()))
    strong = summary[summary["variant"] == "strong"].set_index("cpus")
    for column in ("median_ci_low_s", "median_ci_high_s", "median_ci_coverage", "cv",
                   "outliers", "speedup_ci_low", "speedup_ci_high"):
        assert column in summary.columns, column
    assert (strong["median_ci_coverage"] == 0.9375).all()
    assert strong.loc[1, "speedup_ci_low"] == strong.loc[1, "speedup_ci_high"] == 1.0
    assert (strong["speedup_ci_low"] <= strong["speedup"]).all()
    assert (strong["speedup"] <= strong["speedup_ci_high"]).all()
    assert strong["usl_sigma"].iloc[0] == pytest.approx(0.05, abs=0.005)
    assert strong["usl_kappa"].iloc[0] == pytest.approx(0.02, abs=0.002)
    assert strong["usl"].iloc[0].startswith("contention sigma = 0.05")
    assert strong["amdahl"].iloc[0].startswith("serial fraction s = ")
    weak = summary[summary["variant"] == "weak"]
    assert weak["gustafson_serial_fraction"].iloc[0] == pytest.approx(0.25, abs=0.01)
    assert (weak["scaled_speedup_ci_low"] <= weak["scaled_speedup"] + 1e-12).all()


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_bootstrap_interval_states_the_coverage_a_seeded_simulation_measures(n):
    """Labelled 95%, the percentile bootstrap of a ratio of medians covers less with few trials:
    the coverage the report prints beside such an interval is what a simulation measures."""
    measured = stats.bootstrap_coverage(n, simulations=400, resamples=1000, seed=7)
    assert abs(measured - stats.ratio_interval_coverage(n, n)) <= 0.04
    assert measured < 0.95


def test_from_five_trials_the_bootstrap_interval_holds_its_95_percent():
    assert stats.bootstrap_coverage(5, simulations=400, resamples=1000, seed=7) >= 0.94
    assert stats.ratio_interval_coverage(5, 7) == 0.95
