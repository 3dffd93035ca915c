"""Subset and top-k action encodings (testbed/coedge/subsets.py) round-trip."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from testbed.coedge.subsets import (
    action_masks,
    mask_index,
    num_actions,
    one_mask,
    topk_mask,
)
from testbed.config.coedge import CoedgeActionMode as Mode


@pytest.mark.parametrize("b", [1, 2, 3, 5, 7])
@pytest.mark.parametrize(("mode", "k"), [(Mode.ONE, 1), (Mode.SUBSET, 1), (Mode.TOPK, 2)])
def test_index_to_mask_to_index_round_trips(mode: Mode, k: int, b: int) -> None:
    if k > b:
        pytest.skip("k > B")
    masks = action_masks(mode, b, k)
    assert masks.shape == (num_actions(mode, b, k), b)
    assert len({m.tobytes() for m in masks}) == len(masks)  # every action a different set
    np.testing.assert_array_equal(mask_index(mode, masks, k), np.arange(len(masks)))


def test_subset_actions_are_the_bitmasks_minus_one() -> None:
    masks = action_masks(Mode.SUBSET, 4)
    assert len(masks) == 2**4 - 1 and masks.any(axis=1).all()
    assert masks[0].tolist() == [True, False, False, False]  # {0}
    assert masks[5].tolist() == [False, True, True, False]  # bits 0b0110 = 6
    assert masks[-1].all()


def test_topk_actions_are_every_k_subset_once() -> None:
    masks = action_masks(Mode.TOPK, 6, 3)
    assert len(masks) == math.comb(6, 3) and (masks.sum(axis=1) == 3).all()
    want = {frozenset(c) for c in combinations(range(6), 3)}
    assert {frozenset(np.flatnonzero(m)) for m in masks} == want
    assert np.flatnonzero(masks[0]).tolist() == [0, 1, 2]  # colex: {0,1,2} first …
    assert np.flatnonzero(masks[-1]).tolist() == [3, 4, 5]  # … {3,4,5} last


def test_masks_that_are_no_action_of_the_mode_give_minus_one() -> None:
    none = np.zeros(4, dtype=bool)
    two = np.array([True, False, True, False])
    assert mask_index(Mode.SUBSET, none) == -1
    assert mask_index(Mode.ONE, two) == -1
    assert mask_index(Mode.TOPK, two, 3) == -1
    assert mask_index(Mode.TOPK, two, 2) >= 0


def test_topk_by_score_picks_the_best_and_encodes_as_an_action() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 3.0, 1.0, 0.0]])
    mask = topk_mask(scores, 2)
    assert mask.tolist() == [[False, True, False, True], [True, True, False, False]]
    index = mask_index(Mode.TOPK, mask, 2)
    np.testing.assert_array_equal(action_masks(Mode.TOPK, 4, 2)[index], mask)
    np.testing.assert_array_equal(one_mask(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
