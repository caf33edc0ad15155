"""Length-grouped batches with dynamic padding, sharded across processes.

Attention cost grows with the padded length, and annotation texts vary a lot in length, so
a random batch pads every short text to its longest neighbour. Here the shuffled data is cut
into large pools, each pool is sorted by length and cut into batches, and the batches are
shuffled again: the order stays random from epoch to epoch, but each batch holds texts of
about the same length and is padded only to its own longest member.

Under DDP each step's global batch is one run of similar lengths dealt out round-robin, so no
process waits for a neighbour with a much longer batch, and every process gets the same
number of steps (the data is padded by wrapping around, as `DistributedSampler` does).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from labelloop_trainer.training.features import IGNORE, Feature

POOL_BATCHES = 50
"""Batches per sorting pool: large enough to group lengths, small enough to stay random."""


def train_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, rank: int, world: int
) -> list[list[int]]:
    """This process's batches (example indices) for one epoch; reproducible per epoch."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order += order[: (-len(order)) % world]
    step = batch_size * world
    pools = [order[i : i + step * POOL_BATCHES] for i in range(0, len(order), step * POOL_BATCHES)]
    global_batches = []
    for pool in pools:
        pool.sort(key=lambda i: lengths[i], reverse=True)
        global_batches += [pool[i : i + step] for i in range(0, len(pool), step)]
    rng.shuffle(global_batches)
    return [batch[rank::world] for batch in global_batches]


def eval_batches(lengths: Sequence[int], batch_size: int, rank: int, world: int) -> list[list[int]]:
    """This process's share of the eval set, longest first, each example exactly once."""
    mine = sorted(range(rank, len(lengths), world), key=lambda i: lengths[i], reverse=True)
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def collate(
    features: Sequence[Feature], pad_id: int, multiple_of: int = 1
) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member (rounded up to `multiple_of`) and stack it."""
    width = max(len(f.input_ids) for f in features)
    width += (-width) % multiple_of
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        ids[row, : len(f.input_ids)] = torch.tensor(f.input_ids)
        mask[row, : len(f.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if features[0].token_type_ids is not None:
        types = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            types[row, : len(f.input_ids)] = torch.tensor(f.token_type_ids)
        batch["token_type_ids"] = types
    batch["labels"] = _targets(features, width)
    return batch


def _targets(features: Sequence[Feature], width: int) -> torch.Tensor:
    first = features[0].target
    if isinstance(first, int):
        return torch.tensor([f.target for f in features], dtype=torch.long)
    if isinstance(first, tuple) and first and isinstance(first[0], float):
        return torch.tensor([f.target for f in features], dtype=torch.float)
    tags = torch.full((len(features), width), IGNORE, dtype=torch.long)
    for row, f in enumerate(features):
        assert isinstance(f.target, tuple)
        tags[row, : len(f.target)] = torch.tensor(f.target, dtype=torch.long)
    return tags


def iterate(
    features: Sequence[Feature], batches: Sequence[list[int]], pad_id: int, multiple_of: int
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Each batch's indices with its padded tensors."""
    for batch in batches:
        yield batch, collate([features[i] for i in batch], pad_id, multiple_of)
