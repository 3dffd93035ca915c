"""The system of docs/papers.md §B as pure functions: base stations, each with an edge
server, whose schedulers pick one or several servers per AIGC task and split it so that
they finish together (docs/coedge.md). The twin built on them is
coordinator/envs/coedge_twin.py.
"""

from testbed.coedge.split import Split, finish_times_s, split_task, task_delay_s, whole_task_s
from testbed.coedge.subsets import action_masks, mask_index, num_actions, one_mask, topk_mask

__all__ = [
    "Split",
    "action_masks",
    "finish_times_s",
    "mask_index",
    "num_actions",
    "one_mask",
    "split_task",
    "task_delay_s",
    "topk_mask",
    "whole_task_s",
]
