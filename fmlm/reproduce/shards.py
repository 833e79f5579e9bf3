"""Splitting a sample set over ``torchrun`` processes so that the set does not depend on their number.

Sample i always gets the same noise (each index has its own generator, ``fmlm.samplers``); rank r
samples the contiguous range ``shard_range(n, r, world)``, writes ``RUN/eval/<id>.rank<r>.jsonl``, and
after a barrier rank 0 merges the shards in index order into ``RUN/eval/<id>.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmlm.experiment.run_folder import EVAL_DIR
from fmlm.files import read_jsonl, write_jsonl_atomic


@dataclass
class Shard:
    """One process's part of a sample set."""

    indices: list[int]
    texts: list[str]
    nfe: int
    wall_s: float


def check_count(name: str, value: int) -> int:
    """``value`` when it is an integer >= 1, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def shard_range(n: int, rank: int, world: int) -> range:
    """Contiguous indices of ``rank`` among ``world`` processes over ``0 .. n-1``; the first ``n % world``
    ranges are one longer. Every index lies in exactly one range."""
    check_count("n", n)
    check_count("world", world)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise ValueError(f"rank: expected an integer in [0, {world}), got {rank!r}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def sample_shard(pretrained, sampler, n: int, rank: int, world: int, *, length: int, device="cpu",
                 progress: bool = True) -> Shard:
    """Sample this rank's part of ``n`` samples (no sampling for an empty part)."""
    from fmlm.models.sample import sample_texts

    part = shard_range(n, rank, world)
    if len(part) == 0:
        return Shard([], [], 0, 0.0)
    samples, texts = sample_texts(pretrained, sampler, len(part), length=length, first_index=part.start,
                                  device=device, progress=progress)
    return Shard(list(samples.indices), list(texts), int(samples.nfe), float(samples.wall_s))


def shard_path(run_dir: Path, rid: str, rank: int) -> Path:
    """``RUN/eval/<id>.rank<r>.jsonl``."""
    return Path(run_dir) / EVAL_DIR / f"{rid}.rank{rank}.jsonl"


def samples_path(run_dir: Path, rid: str) -> Path:
    """``RUN/eval/<id>.jsonl``, the merged per-sample file."""
    return Path(run_dir) / EVAL_DIR / f"{rid}.jsonl"


def write_rows(path: Path, rows: list[dict]) -> Path:
    """One JSON line per row, through a temporary file and a rename."""
    return write_jsonl_atomic(path, rows)


def write_shard(run_dir: Path, rid: str, rank: int, shard: Shard) -> Path:
    """This rank's ``{"index", "text", "nfe"}`` lines (an empty file for an empty shard)."""
    rows = [{"index": i, "text": t, "nfe": shard.nfe} for i, t in zip(shard.indices, shard.texts)]
    return write_rows(shard_path(run_dir, rid, rank), rows)


def read_rows(path: Path) -> list[dict]:
    """The per-sample lines of ``path``, each checked to hold index, text and nfe (one-line ``ValueError``)."""
    if not path.is_file():
        raise ValueError(f"{path}: missing")
    records, _ = read_jsonl(path, strict=True)
    for number, row in records:
        if not {"index", "text", "nfe"} <= set(row):
            raise ValueError(f"{path}:{number}: expected an object with index, text and nfe")
    return [row for _, row in records]


def merge_shards(run_dir: Path, rid: str, world: int, n: int) -> list[dict]:
    """Rank 0, after the barrier: the shards of ``rid`` in index order, checked to hold exactly
    ``0 .. n-1``, written to ``RUN/eval/<id>.jsonl``; every shard file of ``rid`` is then removed."""
    paths = [shard_path(run_dir, rid, r) for r in range(world)]
    rows = sorted((row for p in paths for row in read_rows(p)), key=lambda row: row["index"])
    indices = [row["index"] for row in rows]
    if indices != list(range(n)):
        raise ValueError(f"{rid}: the shards hold indices {indices[:5]}..., not exactly 0..{n - 1}")
    write_rows(samples_path(run_dir, rid), rows)
    for path in sorted((Path(run_dir) / EVAL_DIR).glob(f"{rid}.rank*.jsonl")):  # stale ones of a larger world too
        path.unlink()
    return rows


def all_agree(ok: bool, device) -> bool:
    """True when ``ok`` on every process (a collective: every rank must call it); plain ``ok`` alone."""
    import torch

    from fmlm.train.distributed import all_reduce_mean

    flag = torch.tensor([1.0 if ok else 0.0], dtype=torch.float32, device=device)
    return bool(all_reduce_mean(flag).item() == 1.0)


def sum_over_ranks(value: float, device) -> float:
    """Sum of ``value`` over every process (a collective); ``value`` alone without a process group."""
    import torch
    import torch.distributed as dist

    from fmlm.train.distributed import all_reduce_mean

    world = dist.get_world_size() if dist.is_initialized() else 1
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    return float(all_reduce_mean(tensor).item()) * world
