"""Overlap file work with compute: read ahead and write behind on a few threads, in order, with bounded memory.

Threads rather than processes (``torch.utils.data.DataLoader``'s workers): Pillow's decoders and encoders, zlib
and numpy release the GIL while they work, so reading, decoding, encoding and writing run beside the network's
own threads without copying images between processes. ``workers=0`` does everything in the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["FileWorkers"]

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W")


class FileWorkers(Generic[W]):
    """``workers`` threads that read ahead (``prefetch``) and write behind (``write``).

    Args:
        workers: threads for file work; 0 runs everything in the calling thread.
        ahead: how many items ``prefetch`` loads before they are asked for, and how many writes may be pending
            before ``write`` waits for the oldest; bounds the memory held by finished-but-unwritten work.
        on_written: called in the calling thread, in submission order, with each finished write's result.
    """

    def __init__(self, workers: int, *, ahead: int = 2, on_written: Callable[[W], None]) -> None:
        if workers < 0 or ahead < 1:
            raise ValueError(f"workers must be >= 0 and ahead >= 1, got {workers} and {ahead}")
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pconv-files") if workers else None
        self._ahead = ahead
        self._on_written = on_written
        self._writes: deque[Future[W]] = deque()

    def __enter__(self) -> FileWorkers[W]:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def prefetch(self, load: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``load(item)`` for each item, up to ``ahead`` of them loading while the caller works; in order."""
        if self._pool is None:
            yield from map(load, items)
            return
        pending: deque[Future[R]] = deque()
        source = iter(items)
        for item in source:
            pending.append(self._pool.submit(load, item))
            if len(pending) > self._ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def write(self, save: Callable[[], W]) -> None:
        """Run ``save()`` behind the caller; hand finished results to ``on_written`` (in order)."""
        if self._pool is None:
            self._on_written(save())
            return
        self._writes.append(self._pool.submit(save))
        while self._writes and (len(self._writes) > self._ahead or self._writes[0].done()):
            self._on_written(self._writes.popleft().result())

    def flush(self) -> None:
        """Wait for every pending write and hand its result to ``on_written``."""
        while self._writes:
            self._on_written(self._writes.popleft().result())
