"""Several processes, one job: the plumbing ``pconv inpaint`` and ``pconv evaluate`` use under ``torchrun``.

PyTorch's launcher starts the processes and tells each its place in environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``); ``Ranks.from_env`` reads
them, and a plain ``pconv`` process is rank 0 of 1. Work is shared by a fixed rule (``Ranks.share``: item ``i``
goes to rank ``i % world_size``), so the split depends only on the sorted work list and the number of processes.

Each rank runs on its own device (``rank_device``: ``cuda:LOCAL_RANK`` when GPUs are used) or, on the CPU, on its
share of the node's cores (``split_threads``). Inference exchanges no tensors, so the ranks talk only through a
gloo process group (``Group``): counters in the rendezvous store for rank 0's progress bar, and one
``all_gather_object`` of each rank's small result at the end. gloo runs wherever torchrun does, GPUs or not.

No state lives in this module; nothing here runs at import, and torch is imported only when needed (the CLI's
``--help`` stays instant).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

__all__ = ["Group", "Ranks", "SharedCount", "on_every_rank", "rank_device", "rank_threads", "split_threads"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# The final exchange happens after every rank has said it is done (``Group.wait_all``), so the collective itself
# is quick; the generous timeout only covers a slow start of one rank (a model load on a busy node).
GROUP_TIMEOUT = timedelta(minutes=30)
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world_size`` processes (rank 0 of 1 without ``torchrun``).

    Attributes:
        rank: 0..world_size-1 over all nodes.
        world_size: the number of processes over all nodes.
        local_rank: 0..local_world_size-1 on this node (picks the GPU).
        local_world_size: the number of processes on this node (shares its CPU cores).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.world_size and 0 <= self.local_rank < self.local_world_size):
            raise ValueError(
                f"inconsistent torchrun environment: RANK={self.rank} WORLD_SIZE={self.world_size} "
                f"LOCAL_RANK={self.local_rank} LOCAL_WORLD_SIZE={self.local_world_size}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ranks:
        """Read torchrun's variables; absent ones mean a single process. ValueError on values that are not integers."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            world_size = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local_rank = int(env.get("LOCAL_RANK", "0"))
            local_world_size = int(env.get("LOCAL_WORLD_SIZE", str(world_size)))
        except ValueError:
            raise ValueError(
                "RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers (they are set by torchrun)"
            ) from None
        return cls(rank, world_size, local_rank, local_world_size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's fixed share of ``items``: those at positions ``rank``, ``rank + world_size``, ..."""
        return list(items[self.rank :: self.world_size])


def rank_device(requested: str | None, ranks: Ranks) -> str | None:
    """The device this rank runs on.

    ``None`` or ``"cuda"`` under torchrun with GPUs gives ``cuda:LOCAL_RANK``; ``"cpu"`` and an explicit
    ``"cuda:N"`` are kept (several ranks may share one GPU on purpose). A single process keeps ``requested``,
    ``None`` included (the backend then chooses), without importing torch.

    Raises:
        ValueError: more processes on this node than GPUs, said the same way by every rank.
    """
    if not ranks.enabled or requested not in (None, "cuda"):
        return requested
    import torch

    if not torch.cuda.is_available():
        if requested == "cuda":
            raise ValueError("--device cuda asked for, but CUDA is not available here; use --device cpu")
        return "cpu"
    gpus = torch.cuda.device_count()
    if ranks.local_world_size > gpus:
        raise ValueError(
            f"torchrun starts {ranks.local_world_size} processes on this node but only {gpus} GPU(s) are visible; "
            f"use --nproc_per_node={gpus} (or --device cpu)"
        )
    return f"cuda:{ranks.local_rank}"


def rank_threads(ranks: Ranks, threads: int | None = None) -> int | None:
    """This process's CPU thread count, without importing torch.

    ``threads`` is used as given; ``None`` keeps the library's default for a single process (returns ``None``)
    and, under torchrun, gives each of the node's processes an equal share of the cores this process may run on
    (at least one).
    """
    if threads is None:
        if not ranks.enabled:
            return None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // ranks.local_world_size)
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    return threads


def split_threads(ranks: Ranks, threads: int | None = None) -> int:
    """Set and return this process's torch thread count (``rank_threads``; ``None`` keeps torch's own)."""
    import torch

    count = rank_threads(ranks, threads)
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


@dataclass
class Group:
    """The ranks of one torchrun job, joined through a gloo process group; a no-op for a single process.

    Use as a context manager (``with Group(ranks) as group:``). ``add`` counts in a store every rank sees,
    ``wait_all`` waits until every rank has called it, and ``all_gather`` hands every rank the list of all ranks'
    objects, in rank order.
    """

    ranks: Ranks
    name: str = "pconv"
    _store: Any = None
    _local: dict[str, int] = field(default_factory=dict)

    def __enter__(self) -> Group:
        if self.ranks.enabled:
            import torch.distributed as dist

            store, rank, world_size = next(dist.rendezvous("env://"))
            dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=GROUP_TIMEOUT)
            # torchelastic restarts reuse the store: keep each attempt's counters apart
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            self._store = dist.PrefixStore(f"{self.name}/{attempt}/", store)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._store is not None:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._store = None

    def add(self, key: str, amount: int) -> int:
        """Add ``amount`` to the counter ``key`` shared by all ranks; return its new total."""
        if self._store is None:
            self._local[key] = self._local.get(key, 0) + amount
            return self._local[key]
        return int(self._store.add(key, amount))

    def wait_all(self, key: str, *, poll: Callable[[], None] | None = None) -> None:
        """Say this rank is done with ``key`` and wait until every rank has; call ``poll`` while waiting."""
        done = self.add(key, 1)
        while done < self.ranks.world_size:
            if poll is not None:
                poll()
            time.sleep(POLL_SECONDS)
            done = self.add(key, 0)

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if self._store is None:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.ranks.world_size
        dist.all_gather_object(out, obj)
        return out


class SharedCount:
    """A count of finished items that every rank adds to and rank 0 shows on its progress bar.

    Args:
        group: the ranks.
        key: the counter's name in the group's store.
        bar: rank 0's bar (anything with ``n`` and ``update(k)``, e.g. tqdm), or None on the other ranks.
    """

    def __init__(self, group: Group, key: str, bar: Any = None) -> None:
        self.group, self.key, self.bar = group, key, bar

    def update(self, amount: int) -> None:
        """Count ``amount`` more items done here; move the bar to the total of all ranks."""
        total = self.group.add(self.key, amount)
        if self.bar is not None and total > self.bar.n:
            self.bar.update(total - self.bar.n)

    def wait_all(self) -> None:
        """Wait until every rank has finished its share, moving the bar meanwhile."""
        self.group.wait_all(self.key + "/ranks done", poll=lambda: self.update(0))


def on_every_rank(group: Group, step: Callable[[], T]) -> T | None:
    """Run ``step`` on every rank; if it fails on any, rank 0 raises that error once and the others return None.

    Set-up errors (a missing folder, a bad option) are mostly the same on every rank and should be printed once;
    an error on one rank only (its GPU) must still be seen, and by rank 0, whose output the user reads.
    A single process simply runs ``step`` (its error propagates).

    Raises:
        ValueError, OSError, RuntimeError: on rank 0, its own error, or ``RuntimeError("rank R: reason")``.
    """
    try:
        result, error = step(), None
    except (ValueError, OSError, RuntimeError) as exc:
        result, error = None, exc
    reasons = group.all_gather(None if error is None else one_line(error))
    if all(reason is None for reason in reasons):
        return result
    if not group.ranks.is_main:
        return None
    if error is not None:
        raise error
    rank, reason = next((r, reason) for r, reason in enumerate(reasons) if reason is not None)
    raise RuntimeError(f"rank {rank}: {reason}")


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
