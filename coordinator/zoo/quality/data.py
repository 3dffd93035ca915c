"""The real images the quality models train on: scikit-learn's bundled digits.

`load_digits` ships inside scikit-learn (1,797 real 8 × 8 handwritten digits, grey
levels 0–16; nothing is downloaded). They are scaled to [-1, 1] and split once, by a
fixed permutation that is part of the data's definition: `HELD_OUT` images that no
model ever trains on (the gate's real pairs and its Fréchet reference), the rest for
training. Generators and the evaluator train on the same real training images, each
from its own seed; the evaluator never sees a generated sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.config.quality import QualityCategory
from testbed.quality.conditions import (
    CONDITION_SIZE,
    IMAGE_SHAPE,
    ImageProperties,
    encode,
    measure_properties,
)

SPLIT_SEED = 20_250_213
"""Seed of the train / held-out permutation: part of the data's definition."""
HELD_OUT = 360
"""Images kept out of every model's training (20 %)."""


@dataclass(frozen=True)
class DigitSet:
    """Real images (n, 1, 8, 8) float32 in [-1, 1] and their measured properties."""

    images: np.ndarray
    props: ImageProperties

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> DigitSet:
        return DigitSet(self.images[index], self.props.take(index))


def load_digit_split() -> tuple[DigitSet, DigitSet]:
    """(training set, held-out set) of the real digits; properties measured on all."""
    from sklearn.datasets import load_digits  # scikit-learn: the [train] extra

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 8.0 - 1.0).reshape(-1, *IMAGE_SHAPE)
    every = DigitSet(images, measure_properties(images, bunch.target))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(every))
    return every.take(np.sort(order[HELD_OUT:])), every.take(np.sort(order[:HELD_OUT]))


def conditions_for(
    props: ImageProperties, categories: list[QualityCategory], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A category for each image (uniform) and the condition its request makes for the
    image: (conditions (n, CONDITION_SIZE), category indices (n,))."""
    n = len(props)
    which = rng.integers(0, len(categories), n)
    cond = np.empty((n, CONDITION_SIZE), dtype=np.float32)
    for c, category in enumerate(categories):
        rows = np.flatnonzero(which == c)
        cond[rows] = encode(props.take(rows), category, rng)
    return cond, which


def request_batch(
    data: DigitSet,
    categories: list[QualityCategory],
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n real images drawn with replacement and their requests' conditions:
    (images, conditions, category indices)."""
    index = rng.integers(0, len(data), n)
    cond, which = conditions_for(data.props.take(index), categories, rng)
    return data.images[index], cond, which
