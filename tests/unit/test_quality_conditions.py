"""Request conditions on the digit image set (testbed/quality/conditions.py) and the
`quality:` config's categories (testbed/config/quality.py)."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.config.quality import ConditionAttribute, QualityCategory, QualityConfig
from testbed.quality.conditions import (
    CONDITION_SIZE,
    DIGITS,
    SLANT_SLICE,
    THICKNESS_SLICE,
    ImageProperties,
    condition_problem,
    encode,
    ink,
    is_true_of,
    measure_properties,
    slant,
    to_payload,
)

A = ConditionAttribute


def _props(n: int = 300, seed: int = 0) -> ImageProperties:
    rng = np.random.default_rng(seed)
    return ImageProperties(rng.integers(0, DIGITS, n), rng.integers(0, 3, n),
                           rng.integers(0, 3, n))  # fmt: skip


@pytest.mark.parametrize("category", QualityConfig().categories, ids=lambda c: c.name)
def test_a_category_fixes_what_it_says_and_its_condition_is_true_of_its_image(category):
    props = _props()
    cond = encode(props, category, np.random.default_rng(1))
    assert cond.shape == (300, CONDITION_SIZE) and condition_problem(cond) is None
    assert is_true_of(cond, props).diagonal().all()
    digits = (cond[:, :DIGITS] > 0).sum(axis=1)
    assert (digits == (2 if A.DIGIT_PAIR in category.fixes else 1)).all()
    assert ((cond[:, THICKNESS_SLICE] > 0).sum(axis=1) == (A.THICKNESS in category.fixes)).all()
    assert ((cond[:, SLANT_SLICE] > 0).sum(axis=1) == (A.SLANT in category.fixes)).all()


def test_a_condition_is_false_of_an_image_lacking_a_fixed_property():
    props = ImageProperties(np.array([3, 3, 5, 3]), np.array([0, 2, 0, 0]),
                            np.array([1, 1, 1, 2]))  # fmt: skip
    complex_ = QualityCategory("complex", [A.DIGIT, A.THICKNESS, A.SLANT])
    cond = encode(props.take(np.array([0])), complex_, np.random.default_rng(0))
    # the same digit, thickness and slant; other thickness; other digit; other slant
    assert is_true_of(cond, props).tolist() == [[True, False, False, False]]
    basic = QualityCategory("basic", [A.DIGIT])
    cond = encode(props.take(np.array([0])), basic, np.random.default_rng(0))
    assert is_true_of(cond, props).tolist() == [[True, True, False, True]]


def test_malformed_conditions_are_named():
    good = encode(_props(4), QualityConfig().categories[0], np.random.default_rng(0))
    assert condition_problem(good) is None
    assert "shape" in condition_problem(good[:, :-1])
    half = good.copy()
    half[0, 0] = 0.5
    assert "+1 or -1" in condition_problem(half)
    none = np.full_like(good, -1.0)
    assert "digits" in condition_problem(none)
    two_bins = good.copy()
    two_bins[0, THICKNESS_SLICE] = 1.0
    assert "tercile" in condition_problem(two_bins)


def test_the_payload_carries_plus_and_minus_one_as_255_and_0():
    cond = encode(_props(3), QualityConfig().categories[3], np.random.default_rng(0))
    raw = np.frombuffer(to_payload(cond), dtype=np.uint8)
    assert set(raw.tolist()) <= {0, 255} and raw.size == cond.size
    # what an edge makes of those bytes (testbed/zoo/drivers.py Payload)
    assert np.allclose(raw.astype(np.float32) * np.float32(2 / 255) - 1, cond.ravel(), atol=1e-6)


def test_thickness_and_slant_are_measured_within_each_digit_class():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (90, 1, 8, 8)).astype(np.float32)
    digit = np.repeat(np.arange(3), 30)
    props = measure_properties(images, digit)
    for d in range(3):
        assert np.bincount(props.thickness[digit == d], minlength=3).tolist() == [10, 10, 10]
        assert np.bincount(props.slant[digit == d], minlength=3).tolist() == [10, 10, 10]
    thin_bold = ink(images)[digit == 0]
    assert thin_bold[props.thickness[digit == 0] == 2].min() >= thin_bold[
        props.thickness[digit == 0] == 0].max()  # fmt: skip


def test_slant_tells_a_right_leaning_stroke_from_a_left_leaning_one():
    right = -np.ones((1, 1, 8, 8), dtype=np.float32)
    left = right.copy()
    for row in range(8):  # "/" : the top of the stroke is on the right
        right[0, 0, row, 7 - row] = 1.0
        left[0, 0, row, row] = 1.0
    assert slant(right)[0] > 0.5 > -0.5 > slant(left)[0]


def test_the_config_refuses_categories_that_fix_no_digit_or_two():
    assert QualityCategory("x", [A.THICKNESS]).check()
    assert QualityCategory("x", [A.DIGIT, A.DIGIT_PAIR]).check()
    assert not QualityCategory("x", [A.DIGIT_PAIR, A.SLANT]).check()
    assert [c.name for c in QualityConfig().categories] == [
        "basic", "imagination", "detail", "complex"]  # fmt: skip
    with pytest.raises(KeyError, match="known: basic"):
        QualityConfig().category("nope")
