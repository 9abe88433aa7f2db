"""ted.stats: intervals over problems, the paired difference and McNemar's exact test."""

from __future__ import annotations

from math import comb

import pytest

from ted.stats import compare, per_problem


def single(values: list[int]) -> list[list[int]]:
    return [[v] for v in values]


def test_two_problems_on_thirty_is_not_significant() -> None:
    """The AIME situation: 0.667 → 0.733 is two problems, not a finding."""
    base = [1] * 20 + [0] * 10
    lib = [1] * 22 + [0] * 8
    result = compare(single(base), single(lib))
    assert result.n == 30 and result.repeats == 1
    assert result.delta == pytest.approx(2 / 30)
    assert result.baseline.acc == pytest.approx(20 / 30) and result.with_library.acc == pytest.approx(22 / 30)
    assert result.delta_ci95[0] <= 0 <= result.delta_ci95[1] and not result.significant
    assert result.p_value == pytest.approx(0.5)  # McNemar exact: 2 discordant pairs, both one way


def test_mcnemar_exact_counts_only_discordant_pairs() -> None:
    # 9 problems gained, 1 lost, 90 unchanged: p = 2 * P(X >= 9), X ~ Binomial(10, 1/2).
    base = [0] * 9 + [1] + [1] * 45 + [0] * 45
    lib = [1] * 9 + [0] + [1] * 45 + [0] * 45
    result = compare(single(base), single(lib))
    assert result.p_value == pytest.approx(2 * (comb(10, 9) + comb(10, 10)) / 2**10)
    assert result.delta == pytest.approx(0.08)


def test_a_clear_gain_excludes_zero_and_intervals_hold_the_estimate() -> None:
    base = [1, 0] * 100
    lib = [1, 1] * 100
    result = compare(single(base), single(lib))
    assert result.significant and result.delta_ci95[0] > 0 and result.p_value < 1e-20
    for arm in (result.baseline, result.with_library):
        assert arm.ci95[0] <= arm.acc <= arm.ci95[1]
    assert result.baseline.ci95[1] - result.baseline.ci95[0] > 0.05  # n=200: about ±0.07


def test_identical_arms_and_determinism() -> None:
    scores = single([1, 0, 1, 1, 0, 0, 1])
    result = compare(scores, scores)
    assert result.delta == 0 and result.delta_ci95 == (0.0, 0.0) and result.p_value == 1.0
    assert compare(single([1, 0, 1]), single([1, 1, 1])) == compare(single([1, 0, 1]), single([1, 1, 1]))


def test_repeats_average_per_problem_and_do_not_inflate_n() -> None:
    base = [[1, 0, 0, 1]] * 10 + [[0, 0, 0, 0]] * 10
    lib = [[1, 1, 1, 1]] * 10 + [[0, 0, 0, 0]] * 10
    result = compare(base, lib)
    assert result.n == 20 and result.repeats == 4
    assert result.baseline.acc == pytest.approx(0.25) and result.with_library.acc == pytest.approx(0.5)
    assert result.p_value == pytest.approx(2 / 2**10)  # a sign test over the 10 changed problems
    assert per_problem([[1, 0], [1]]) == [0.5, 1.0]
    assert result.to_dict()["delta_ci95"] == list(result.delta_ci95)


def test_mismatched_arms_are_refused() -> None:
    with pytest.raises(ValueError, match="different problems"):
        compare(single([1, 0]), single([1]))
    with pytest.raises(ValueError, match="at least one scored reply"):
        compare([[1], []], [[1], [0]])


def test_pooled_over_one_seed_is_the_paired_t_interval_over_problems():
    from scipy.stats import ttest_rel

    from ted.stats import pooled

    base = [[float(i % 3 == 0)] for i in range(60)]
    lib = [[float(i % 2 == 0)] for i in range(60)]
    one = pooled(base, [lib])
    test = ttest_rel([r[0] for r in lib], [r[0] for r in base])
    low, high = test.confidence_interval(0.95)
    assert one.delta == pytest.approx(compare(base, lib).delta)
    assert one.ci95 == pytest.approx((low, high)) and one.p_value == pytest.approx(test.pvalue)
    assert one.df == 59 and one.sd_seeds == 0


def test_pooled_interval_widens_when_the_seeds_disagree():
    from ted.stats import pooled

    base = [[0.0]] * 50 + [[1.0]] * 50
    same = [[float(i % 2)] for i in range(100)]
    agree = pooled(base, [same, same, same])
    assert agree.sd_seeds == 0 and agree.ci95 == pytest.approx(pooled(base, [same]).ci95)
    # three libraries: one much better, one much worse, one in between: the mean is the same, the doubt is not
    better = [[1.0]] * 100
    worse = [[0.0]] * 100
    spread = pooled(base, [better, same, worse])
    assert spread.deltas == pytest.approx((0.5, 0.0, -0.5)) and spread.delta == pytest.approx(0.0)
    assert spread.sd_seeds == pytest.approx(0.5) and spread.df < 10
    assert spread.ci95[1] - spread.ci95[0] > 2 * (agree.ci95[1] - agree.ci95[0])
    with pytest.raises(ValueError, match="control's problems"):
        pooled(base, [same[:10]])
