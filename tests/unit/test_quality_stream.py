"""The §C live run's users (coordinator/quality_stream.py), its records, the config that
wires `allocation:` and `quality:` together, and the edge's bound on returned outputs."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from coordinator.quality_recorder import quality_summary
from coordinator.quality_stream import (
    QualityRecord,
    draw_requests,
    record_from_row,
    record_row,
)
from edge_node.validation import InvalidTaskRequest, TaskLimits, validate_task_header
from testbed.allocation import assignment_matrix, random_matrix
from testbed.config import AssignmentMethod, ConfigError, TestbedConfig, config_from_dict
from testbed.config.allocation import DirectRule
from testbed.messages import EdgeTaskRequest, ModelRef
from testbed.quality.conditions import DIGITS, SLANT_SLICE, THICKNESS_SLICE, condition_problem
from testbed.types import FailureReason, Outcome


def config(**live: object) -> TestbedConfig:
    return config_from_dict({"quality": {"live": {"requests_per_slot": 40, **live}}})


def uniform(cfg: TestbedConfig) -> np.ndarray:
    return random_matrix(len(cfg.quality.categories), len(cfg.allocation.models))


def test_a_slots_requests_are_a_function_of_the_seeds_and_the_slot() -> None:
    cfg = config()
    first, again = draw_requests(cfg, 3, uniform(cfg)), draw_requests(cfg, 3, uniform(cfg))
    assert [(r.task_id, r.category, r.model) for r in first] == [
        (r.task_id, r.category, r.model) for r in again
    ]
    assert all(np.array_equal(a.condition, b.condition) for a, b in zip(first, again, strict=True))
    other = draw_requests(cfg, 4, uniform(cfg))
    assert [r.category for r in other] != [r.category for r in first]
    reseeded = draw_requests(config(seed=1), 3, uniform(cfg))
    assert [r.category for r in reseeded] != [r.category for r in first]
    assert len(first) == 40 and len({r.task_id for r in first + other}) == 80


def test_every_condition_asks_what_its_category_fixes_and_nothing_more() -> None:
    cfg = config()
    for request in draw_requests(cfg, 0, uniform(cfg)):
        cond = request.condition[None, :]
        assert condition_problem(cond) is None
        fixes = set(cfg.quality.category(request.category).fixes)
        digits = int((cond[0, :DIGITS] > 0).sum())
        assert digits == (2 if "digit_pair" in fixes else 1)
        assert (cond[0, THICKNESS_SLICE] > 0).any() == ("thickness" in fixes)
        assert (cond[0, SLANT_SLICE] > 0).any() == ("slant" in fixes)
        assert request.model_id == cfg.quality.live.model_ids[request.model]


def test_categories_follow_their_weights_and_a_direct_matrix_sends_each_to_one_model() -> None:
    categories = [
        {"name": "basic", "weight": 0.0, "score_mean": 20.0, "score_std": 3.0},
        {"name": "imagination", "weight": 1.0, "score_mean": 31.0, "score_std": 3.0},
        {"name": "detail", "weight": 1.0, "score_mean": 40.0, "score_std": 3.0},
        {"name": "complex", "weight": 2.0, "score_mean": 40.0, "score_std": 3.0},
    ]
    cfg = config_from_dict({"allocation": {"categories": categories},
                            "quality": {"live": {"requests_per_slot": 400}}})  # fmt: skip
    means = [c["score_mean"] for c in categories]
    thresholds = cfg.allocation.score_thresholds
    matrix = assignment_matrix(
        AssignmentMethod.DIRECT, means, [3.0] * 4, thresholds, DirectRule.MEAN_INTERVAL
    )
    requests = draw_requests(cfg, 0, matrix)
    seen = Counter(r.category for r in requests)
    assert "basic" not in seen
    assert 0.4 < seen["complex"] / len(requests) < 0.6  # weight 2 of 4
    models = {r.category: {x.model for x in requests if x.category == r.category} for r in requests}
    assert models == {"imagination": {"medium"}, "detail": {"large"}, "complex": {"large"}}


def test_a_record_round_trips_through_its_csv_row_and_counts_failures_as_zero_score() -> None:
    done = QualityRecord("users/s000001/r0002", 1, "detail", "large", "digits-l", 14, 0.55,
                         Outcome.COMPLETED, latency_ms=250.0, score=31.5,
                         score_method="builtin:digits-eval@1", output_sha256="ab" * 32)  # fmt: skip
    text = {k: str(v) for k, v in record_row(done).items()}
    assert record_from_row(text) == done
    assert done.utility(0.2) == pytest.approx(31.5 - 0.2 * 0.25)
    lost = QualityRecord("users/s000001/r0003", 1, "basic", "small", "digits-s", 1, 0.1,
                         Outcome.FAILED, FailureReason.TIMEOUT, latency_ms=2000.0)  # fmt: skip
    assert math.isnan(lost.score) and lost.utility(0.2) == pytest.approx(-0.4)
    summary = quality_summary([done, lost], [done.utility(0.2) + lost.utility(0.2)], 0.2)
    assert summary["completed"] == 1 and summary["failure_reasons"] == {"timeout": 1}
    assert summary["score"]["mean"] == pytest.approx(31.5) and summary["score"]["n"] == 1
    assert summary["by_model"]["small"]["completed"] == 0


def test_the_category_lists_and_the_models_must_agree() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"allocation": {"categories": [{"name": "basic"}, {"name": "detail"}]}})
    assert "allocation.categories" in dict(info.value.problems)
    with pytest.raises(ConfigError) as info:
        config_from_dict({"quality": {"live": {"model_ids": {"small": "digits-s"}}}})
    assert "quality.live.model_ids" in dict(info.value.problems)
    with pytest.raises(ConfigError) as info:
        config_from_dict({"quality": {"live": {"edge": "edge-9"}}})
    assert "quality.live.edge" in dict(info.value.problems)
    with pytest.raises(ConfigError) as info:
        same = {"small": "digits-m", "medium": "digits-m", "large": "digits-l"}
        config_from_dict({"quality": {"live": {"model_ids": same}}})
    assert "quality.live.model_ids" in dict(info.value.problems)


def test_an_edge_refuses_to_return_more_output_than_its_bound() -> None:
    limits = TaskLimits(max_steps=100, max_units=10, max_data_bytes=1000, max_output_bytes=512)
    request = EdgeTaskRequest("t/1", ModelRef("digits-m"), 1, True, data_bytes=16,
                              max_output_bytes=256)  # fmt: skip
    validate_task_header(request, limits)
    too_much = EdgeTaskRequest("t/2", ModelRef("digits-m"), 1, True, max_output_bytes=513)
    with pytest.raises(
        InvalidTaskRequest, match=r"max_output_bytes 513 > 512 \(edges.max_output_kb\)"
    ):
        validate_task_header(too_much, limits)
