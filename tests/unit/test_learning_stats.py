"""The learning benchmark's statistics against values worked out by hand or read from a t table."""

from __future__ import annotations

import math

import pytest

from bench.learning_stats import (
    curve_area,
    paired_differences,
    ratios,
    t_central_probability,
    t_interval,
    t_quantile,
    trapezoid_area,
)


@pytest.mark.parametrize(("df", "probability", "expected"), [
    (1, 0.95, 12.706), (2, 0.95, 4.303), (4, 0.95, 2.776), (9, 0.95, 2.262), (30, 0.95, 2.042),
    (4, 0.99, 4.604), (1000, 0.95, 1.962),
])
def test_the_t_quantile_matches_the_table(df: int, probability: float, expected: float) -> None:
    assert t_quantile(probability, df) == pytest.approx(expected, abs=5e-4)


def test_the_t_distribution_has_its_closed_forms_for_one_and_two_degrees_of_freedom() -> None:
    # df 1 is Cauchy: P(|T| <= 1) = 1/2. df 2: P(|T| <= t) = t / sqrt(2 + t²).
    assert t_central_probability(1.0, 1) == pytest.approx(0.5)
    assert t_central_probability(math.sqrt(2), 2) == pytest.approx(math.sqrt(2) / 2)
    assert t_central_probability(0.0, 5) == 0.0


def test_the_t_interval_is_mean_plus_minus_t_times_the_standard_error() -> None:
    # mean 3, sd √2.5, t(0.95, 4) = 2.7764: half width 2.7764 · 1.5811 / √5 = 1.9632.
    found = t_interval([1, 2, 3, 4, 5])

    assert found.mean == 3 and found.n == 5
    assert found.sd == pytest.approx(math.sqrt(2.5))
    assert found.low == pytest.approx(1.0368, abs=1e-4)
    assert found.high == pytest.approx(4.9632, abs=1e-4)


def test_one_value_has_no_interval_and_equal_values_a_point() -> None:
    single = t_interval([0.8])
    same = t_interval([0.8, 0.8, 0.8])

    assert (single.mean, single.low, single.high, single.sd) == (0.8, None, None, None)
    assert same.low == pytest.approx(0.8) and same.high == pytest.approx(0.8)


def test_the_trapezoid_area_adds_the_mean_height_times_the_width_of_each_step() -> None:
    # 0.25 · (0.8 + 0.9) / 2 + 0.25 · (0.9 + 0.85) / 2 = 0.2125 + 0.21875
    assert trapezoid_area([0.0, 0.25, 0.5], [0.8, 0.9, 0.85]) == pytest.approx(0.43125)
    assert trapezoid_area([0.0], [0.8]) == 0.0


def test_a_learning_curve_starts_at_budget_zero_and_its_budgets_ascend() -> None:
    assert curve_area([0.0, 0.5], [0.6, 0.8]) == pytest.approx(0.35)
    with pytest.raises(ValueError):
        curve_area([0.1, 0.5], [0.6, 0.8])
    with pytest.raises(ValueError):
        curve_area([0.0, 0.5, 0.4], [0.6, 0.8, 0.9])


def test_paired_differences_and_their_interval() -> None:
    # differences 0.05 and -0.02: mean 0.015, sd 0.07 / √2, t(0.95, 1) = 12.706: half width 0.4447.
    differences = paired_differences([0.9, 0.8], [0.85, 0.82])
    found = t_interval(differences)

    assert differences == pytest.approx([0.05, -0.02])
    assert found.mean == pytest.approx(0.015)
    assert found.low == pytest.approx(-0.4297, abs=1e-4)
    assert found.high == pytest.approx(0.4597, abs=1e-4)
    with pytest.raises(ValueError):
        paired_differences([0.9], [0.8, 0.7])


def test_ratios_leave_out_a_zero_reference() -> None:
    assert ratios([0.8, 0.5, 0.3], [1.0, 0.0, 0.6]) == pytest.approx([0.8, 0.5])
