"""Reading a body without trusting its size: the one reader for requests and responses.

The api reads request bodies with it (and refuses the rest: 413), the crawler reads
catalogue pages and books (and gives up on the rest), the doctor reads what a
deployment answers (and keeps the first part). Each reads at most ``limit + 1`` bytes,
so a body that never ends or lies about its length costs at most that much memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import StreamReader

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class CappedBody:
    data: bytes  # at most the limit
    complete: bool  # False: the body went on past the limit (what followed was not read)


async def read_capped(
    stream: StreamReader, limit: int, progress: Callable[[int], None] | None = None
) -> CappedBody:
    """Up to ``limit`` bytes of ``stream``, and whether that was all of it.

    ``progress`` is called with each piece's size as it arrives (the crawler's pace check).
    """
    pieces: list[bytes] = []
    size = 0
    # One byte past the limit tells "exactly the limit" from "more".
    while piece := await stream.read(min(CHUNK_BYTES, limit + 1 - size)):
        if progress is not None:
            progress(len(piece))
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            return CappedBody(b"".join(pieces)[:limit], complete=False)
    return CappedBody(b"".join(pieces), complete=True)
