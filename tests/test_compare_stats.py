"""Compare's many-point correction and real coverage, and fits that are solved, not fitted:
each verdict here is shown to come out both ways on data made to decide it."""

import math

import numpy as np
import pytest

from lab.analysis import fits, stats
from lab.present import compare


def test_holm_matches_the_step_down_rule_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4x0.01, 3x0.03, max(0.09, 2x0.04), max(0.09, 1x0.2)
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan, 0.2])
    assert adjusted[:3] == pytest.approx([0.04, 0.09, 0.09]) and adjusted[4] == pytest.approx(0.2)
    assert math.isnan(adjusted[3])
    assert stats.holm([0.5, 0.9]).max() <= 1.0 and list(stats.holm([])) == []


def _test(p, smallest=0.0079):
    return stats.Difference(p, smallest)


@pytest.mark.parametrize("p, adjusted, expected", [
    (0.001, 0.005, "B better"),                       # survives the correction
    (0.03, 0.15, "can't tell after Holm's correction"),  # one of many points below 0.05 by chance
    (0.4, 1.0, "no significant difference"),
])
def test_the_adjusted_p_decides_the_verdict_either_way(p, adjusted, expected):
    assert compare.verdict(0.8, "lower", _test(p), adjusted).startswith(expected)
    if expected == "B better":  # the same evidence the other way round is "B worse"
        assert compare.verdict(1.2, "lower", _test(p), adjusted) == "B worse"


def test_too_few_trials_is_said_before_any_verdict():
    assert compare.verdict(0.5, "lower", _test(0.1, smallest=0.1), 0.1).startswith("too few")


def test_real_coverage_is_what_the_simulation_measures_not_the_nominal():
    assert stats.ratio_interval_coverage(3, 3) == pytest.approx(0.90)
    assert stats.ratio_interval_coverage(5, 7) == pytest.approx(0.95)


@pytest.mark.parametrize("cpus, speedups, exact", [
    ([1, 2], [1.0, 1.8], True),           # one count above 1 for one parameter: solved
    ([1, 2, 4], [1.0, 1.8, 3.0], False),  # two counts for one parameter: a fit with a residual
])
def test_amdahl_from_one_point_per_parameter_is_labelled_exact_not_fitted(cpus, speedups, exact):
    fit = fits.fit_amdahl(cpus, speedups)
    assert fit.fitted and fit.exact == exact
    words = fit.describe()
    assert ("not fitted (one point per parameter" in words) == exact
    assert ("rmse" in words) != exact  # an exact solve never shows 'rmse 0.000'


def test_usl_from_three_counts_is_exact_and_from_four_is_a_fit():
    s = fits.usl_speedup(np.array([1, 2, 4, 8]), 0.05, 0.01)
    assert fits.fit_usl([1, 2, 4], s[:3]).exact
    four = fits.fit_usl([1, 2, 4, 8], s)
    assert not four.exact and "rmse" in four.describe()
    assert fits.fit_gustafson([1, 2], [1.0, 1.9]).exact


def test_failed_measured_trials_are_a_warning_and_a_clean_run_has_none():
    """A run whose measured trials failed must never read 'no warnings' (all failed or some)."""
    import pandas as pd
    from lab.analysis.warnings import data_warnings
    frame = pd.DataFrame({"ok": [True, False, False], "warmup": [True, False, False],
                          "error": [None, "affinity mismatch: got 0", "affinity mismatch: got 0"],
                          "seconds": [1.0, None, None], "point_id": ["p", "p", "p"]})
    found = [w for w in data_warnings(frame, None) if w["code"] == "trials-failed"]
    assert len(found) == 1 and "2 of 2 measured trials failed (every one)" in found[0]["message"]
    assert "affinity mismatch" in found[0]["message"]
    clean = frame.assign(ok=True, error=None)
    assert not [w for w in data_warnings(clean, None) if w["code"] == "trials-failed"]
