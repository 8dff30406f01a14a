"""Statistics against scipy on known numbers, and the verdicts."""

import math
import re

import numpy as np
import pytest
from scipy import stats

from fgvc.evaluate.stats import compare_values, describe, few_runs_warning, verdict

VALUES = [0.712, 0.731, 0.705, 0.722, 0.716]


def test_describe_matches_scipy():
    d = describe(VALUES)
    assert d.n == 5 and d.mean == pytest.approx(np.mean(VALUES))
    assert d.std == pytest.approx(np.std(VALUES, ddof=1)) and d.var == pytest.approx(np.var(VALUES, ddof=1))
    low, high = stats.t.interval(0.95, 4, loc=np.mean(VALUES), scale=stats.sem(VALUES))
    assert (d.ci_low, d.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert d.min == 0.705 and d.max == 0.731


def test_describe_known_textbook_interval():
    # mean 10, s = 2, n = 4: half-width t(0.975, 3) * 2 / 2 = 3.182
    d = describe([8.0, 10.0, 10.0, 12.0], confidence=0.95)
    assert d.std == pytest.approx(math.sqrt(8 / 3))
    assert d.ci_high - d.mean == pytest.approx(stats.t.ppf(0.975, 3) * math.sqrt(8 / 3) / 2)


def test_bootstrap_interval_and_single_value():
    d = describe(VALUES, bootstrap=2000, seed=1)
    assert d.method == "bootstrap(2000)" and d.min <= d.ci_low < d.mean < d.ci_high <= d.max
    one = describe([0.5])
    assert one.ci_low is None and math.isnan(one.std)


def test_paired_comparison_matches_scipy():
    a = {1: 0.70, 2: 0.72, 3: 0.71, 4: 0.69, 5: 0.73}
    b = {1: 0.72, 2: 0.735, 3: 0.725, 4: 0.71, 5: 0.742}
    c = compare_values("top1", a, b)
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    assert c.paired and c.test == "paired t-test"
    assert c.p_value == pytest.approx(stats.ttest_rel(xb, xa).pvalue)
    assert c.wilcoxon_p == pytest.approx(stats.wilcoxon(xb, xa).pvalue)
    d = xb - xa
    half = stats.t.ppf(0.975, 4) * stats.sem(d)
    assert (c.ci_low, c.ci_high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    text = verdict(c, "A", "B")
    assert text.startswith("B better than A on top1 by 1.64 points, 95% CI [")
    assert "5 paired seeds" in text


def test_unpaired_welch_when_seeds_differ():
    a = {1: 0.70, 2: 0.72, 3: 0.71}
    b = {7: 0.70, 8: 0.73, 9: 0.69, 10: 0.72}
    c = compare_values("top1", a, b)
    assert not c.paired and c.test == "Welch t-test"
    assert c.p_value == pytest.approx(stats.ttest_ind(list(b.values()), list(a.values()), equal_var=False).pvalue)
    assert verdict(c).startswith("no significant difference between A and B on top1")
    assert "3 vs 4 runs, unpaired" in verdict(c)


def test_groups_sharing_some_seeds_are_paired_on_those():
    a = {0: 0.70, 1: 0.72, 2: 0.71, 3: 0.90}  # seed 3 has no partner in B: left out, and said
    b = {0: 0.73, 1: 0.74, 2: 0.75}
    c = compare_values("top1", a, b)
    assert c.paired and c.n_a == c.n_b == 3 and c.unshared == 1
    assert c.mean_a == pytest.approx(0.71) and c.diff == pytest.approx(0.03)
    assert c.p_value == pytest.approx(stats.ttest_rel([0.73, 0.74, 0.75], [0.70, 0.72, 0.71]).pvalue)
    assert "3 paired seeds, 1 run without a partner left out" in verdict(c)


def test_lower_is_better_metrics():
    a = {1: 0.10, 2: 0.12, 3: 0.11, 4: 0.105}
    b = {1: 0.05, 2: 0.06, 3: 0.055, 4: 0.052}
    assert verdict(compare_values("ece", a, b), "base", "new").startswith("new better than base on ece by 5.45 points, 95% CI [")


def test_the_gap_and_its_ci_have_the_same_sign_whichever_side_wins():
    a = {1: 0.80, 2: 0.82, 3: 0.81, 4: 0.805}
    b = {1: 0.78, 2: 0.79, 3: 0.785, 4: 0.78}
    for text, winner in ((verdict(compare_values("top1", a, b), "a", "b"), "a"),
                         (verdict(compare_values("top1", b, a), "b", "a"), "a")):
        gap, low, high = map(float, re.match(r".* by ([\d.]+) points, 95% CI \[(-?[\d.]+), (-?[\d.]+)\]", text).groups())
        assert text.startswith(f"{winner} better than") and 0 < low < gap < high
    with pytest.raises(ValueError, match="at least 2 runs per group"):
        compare_values("top1", {1: 0.5}, {2: 0.6})


def test_two_seeds_of_a_bounded_metric_stay_in_range():
    """The case that gave top-1 CI [-0.18, 0.85] and AUROC above 1: a t interval on the logit scale."""
    top1 = describe([0.2, 0.47], metric="top1")
    assert 0 < top1.ci_low < 0.2 and 0.47 < top1.ci_high < 1 and top1.method == "t on logit scale"
    plain = describe([0.2, 0.47])  # the plain t interval of the same numbers leaves [0, 1]
    assert plain.ci_low < 0
    auroc = describe([0.97, 0.999], metric="auroc_macro")
    assert auroc.ci_high < 1 and auroc.mean == pytest.approx(0.9845)
    seconds = describe([10.0, 40.0], metric="train_seconds")
    assert seconds.ci_low > 0 and seconds.method == "t on log scale"
    perfect = describe([1.0, 1.0, 1.0], metric="top1")
    assert perfect.ci_low == perfect.ci_high == 1.0


def test_logit_interval_matches_a_hand_computed_one():
    values = np.array([0.6, 0.7, 0.8])
    logits = np.log(values / (1 - values))
    low, high = stats.t.interval(0.95, 2, loc=logits.mean(), scale=stats.sem(logits))
    d = describe(values, metric="f1_macro")
    assert d.ci_low == pytest.approx(1 / (1 + np.exp(-low))) and d.ci_high == pytest.approx(1 / (1 + np.exp(-high)))


def test_few_runs_warning():
    assert few_runs_warning(2).startswith("only 2 runs") and few_runs_warning(1).startswith("only 1 run:")
    assert few_runs_warning(3) is None
