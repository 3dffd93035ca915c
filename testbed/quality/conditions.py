"""Requests on the digit image set: what an image is, and what a request asks for (numpy).

An image is 8 × 8 grey levels in [-1, 1] (scikit-learn's bundled handwritten digits,
docs/quality.md). Its properties are its digit and two attributes measured from the
pixels, each a tercile *within its digit's class* (so that every digit has thin and
bold, left- and right-leaning examples):

- thickness: the ink, the mean grey level;
- slant: the shear of the ink, cov(column, row) / var(row) over the ink's mass.

A request's condition vector has `CONDITION_SIZE` entries of ±1: ten for the digit
(+1 on the digit asked for, or on both digits of a pair), three for the thickness and
three for the slant (+1 on the tercile asked for; all −1 when the request leaves the
attribute open). Values of ±1 are exactly what a task's payload bytes 255 and 0 turn
into on an edge (testbed/zoo/drivers.py), so the condition travels as the payload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.config.quality import ConditionAttribute, QualityCategory

IMAGE_SIDE = 8
IMAGE_SHAPE = (1, IMAGE_SIDE, IMAGE_SIDE)
"""One image: channel, rows, columns."""
DIGITS = 10
BINS = 3
"""Terciles of an attribute."""
CONDITION_SIZE = DIGITS + 2 * BINS
THICKNESS_SLICE = slice(DIGITS, DIGITS + BINS)
SLANT_SLICE = slice(DIGITS + BINS, DIGITS + 2 * BINS)
ON, OFF = np.float32(1.0), np.float32(-1.0)


@dataclass(frozen=True)
class ImageProperties:
    """What each of n real images is: digit, thickness tercile, slant tercile (n,) int."""

    digit: np.ndarray
    thickness: np.ndarray
    slant: np.ndarray

    def __len__(self) -> int:
        return len(self.digit)

    def take(self, index: np.ndarray) -> ImageProperties:
        return ImageProperties(self.digit[index], self.thickness[index], self.slant[index])


def ink(images: np.ndarray) -> np.ndarray:
    """Mean grey level of each image (n,), in [0, 1] (images in [-1, 1])."""
    return ((images.reshape(len(images), -1) + 1) / 2).mean(axis=1)


def slant(images: np.ndarray) -> np.ndarray:
    """Shear of each image's ink (n,): cov(column, row) / var(row), weights = ink."""
    mass = (images.reshape(len(images), IMAGE_SIDE, IMAGE_SIDE) + 1) / 2
    rows, cols = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE].astype(np.float64)
    total = mass.sum(axis=(1, 2)) + 1e-9
    r_mean = (mass * rows).sum(axis=(1, 2)) / total
    c_mean = (mass * cols).sum(axis=(1, 2)) / total
    dr = rows[None] - r_mean[:, None, None]
    dc = cols[None] - c_mean[:, None, None]
    cov = (mass * dr * dc).sum(axis=(1, 2)) / total
    var = (mass * dr * dr).sum(axis=(1, 2)) / total + 1e-9
    return -cov / var  # rows grow downwards: a top leaning right has negative cov


def _terciles_within(values: np.ndarray, digit: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.int64)
    for d in np.unique(digit):
        mask = digit == d
        cuts = np.quantile(values[mask], [1 / 3, 2 / 3])
        out[mask] = np.searchsorted(cuts, values[mask], side="right")
    return out


def measure_properties(images: np.ndarray, digit: np.ndarray) -> ImageProperties:
    """The properties of labelled real images (terciles within each digit's class)."""
    digit = np.asarray(digit, dtype=np.int64)
    return ImageProperties(
        digit, _terciles_within(ink(images), digit), _terciles_within(slant(images), digit)
    )


def encode(
    props: ImageProperties, category: QualityCategory, rng: np.random.Generator
) -> np.ndarray:
    """Conditions (n, CONDITION_SIZE) that `category`'s requests would make for these
    images: every fixed property true of its image, the rest open. A digit pair adds a
    second digit drawn uniformly from the other nine."""
    n = len(props)
    cond = np.full((n, CONDITION_SIZE), OFF, dtype=np.float32)
    rows = np.arange(n)
    fixes = set(category.fixes)
    cond[rows, props.digit] = ON
    if ConditionAttribute.DIGIT_PAIR in fixes:
        other = (props.digit + rng.integers(1, DIGITS, n)) % DIGITS
        cond[rows, other] = ON
    if ConditionAttribute.THICKNESS in fixes:
        cond[rows, THICKNESS_SLICE.start + props.thickness] = ON
    if ConditionAttribute.SLANT in fixes:
        cond[rows, SLANT_SLICE.start + props.slant] = ON
    return cond


def is_true_of(cond: np.ndarray, props: ImageProperties) -> np.ndarray:
    """(n_cond, n_images) bool: whether condition i asks for nothing image j lacks."""
    asked: np.ndarray = np.asarray(cond) > 0
    digit_ok = asked[:, :DIGITS][:, props.digit]
    thick = asked[:, THICKNESS_SLICE]
    thick_ok = ~np.any(thick, axis=1, keepdims=True) | thick[:, props.thickness]
    slant_part = asked[:, SLANT_SLICE]
    slant_ok = ~np.any(slant_part, axis=1, keepdims=True) | slant_part[:, props.slant]
    return np.asarray(digit_ok & thick_ok & slant_ok)


def condition_problem(cond: np.ndarray) -> str | None:
    """None if `cond` is a batch of well-formed conditions, else what is wrong."""
    if cond.ndim != 2 or cond.shape[1] != CONDITION_SIZE:
        return f"expected conditions of shape (n, {CONDITION_SIZE}), got {cond.shape}"
    if not np.isin(cond, (ON, OFF)).all():
        return "expected every condition entry to be +1 or -1"
    digits = (cond[:, :DIGITS] > 0).sum(axis=1)
    if ((digits < 1) | (digits > 2)).any():
        return "expected one or two digits asked for in every condition"
    for part in (THICKNESS_SLICE, SLANT_SLICE):
        if ((cond[:, part] > 0).sum(axis=1) > 1).any():
            return "expected at most one tercile per attribute"
    return None


def to_payload(cond: np.ndarray) -> bytes:
    """The condition as task payload bytes (+1 → 255, −1 → 0; testbed/zoo/drivers.py)."""
    return np.where(np.asarray(cond) > 0, 255, 0).astype(np.uint8).tobytes()
