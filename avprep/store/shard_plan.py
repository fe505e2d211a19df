"""How ``pack-h5`` cuts N rows into shards: ``(row_start, rows)`` per shard.

- native, ``--shards K``: exactly K shards, sizes differing by at most one
  row (the first ``N mod K`` shards hold one more), so ``--shards 10`` gives
  10 shards for any N >= 10;
- native, ``--rows-per-shard R``: ``ceil(N / R)`` shards of R rows, the last
  one shorter (row r in shard r // R);
- SSPL layout, train split, sharded: 14,400 rows per shard whatever N is,
  because SSPL's loader opens shard ``index // 14400 + 1`` at row ``index %
  14400``. ``ceil(N / 14400)`` shards, numbered from 1, the last one shorter;
  a ``--shards`` count that disagrees is reported, not obeyed (the loader
  could not read the files); an explicit ``--rows-per-shard`` other than
  14,400 is obeyed with a warning (files for avprep's reader, not SSPL's);
- SSPL layout, test split, or no sharding asked: one file.
"""

from __future__ import annotations

import logging
import math

from avprep.errors import ConfigError
from avprep.store.sspl import SSPL_SHARD_ROWS

log = logging.getLogger(__name__)


def shard_bounds(
    n: int,
    *,
    shards: int | None,
    rows_per_shard: int | None,
    layout: str,
    variant: str,
) -> list[tuple[int, int]]:
    """``[(row_start, rows), ...]`` for ``n`` rows (see the module docstring)."""
    if n < 1:
        raise ConfigError("nothing to shard: no rows")
    if layout == "sspl":
        if variant == "test":
            if (shards or 1) > 1 or (rows_per_shard is not None and rows_per_shard < n):
                raise ConfigError(
                    "SSPL's test loader reads one file per kind: pack a test split unsharded"
                )
            return [(0, n)]
        if rows_per_shard is not None and rows_per_shard != SSPL_SHARD_ROWS:
            log.warning(
                "SSPL layout with %d rows per shard: SSPL's own loader reads %d (shard "
                "index // %d + 1) and cannot read these files; avprep's reader can",
                rows_per_shard, SSPL_SHARD_ROWS, SSPL_SHARD_ROWS,
            )  # fmt: skip
            return _fixed(n, rows_per_shard)
        if rows_per_shard is None and (shards is None or shards == 1):
            return [(0, n)]
        count = math.ceil(n / SSPL_SHARD_ROWS)
        if shards is not None and shards != count:
            log.warning(
                "SSPL layout: %d rows at %d rows per shard make %d shard(s), not the %d asked "
                "(SSPL's loader fixes the rows per shard)",
                n, SSPL_SHARD_ROWS, count, shards,
            )  # fmt: skip
        return _fixed(n, SSPL_SHARD_ROWS)
    if shards is not None:
        if shards > n:
            raise ConfigError(f"--shards {shards} needs at least {shards} rows; the split has {n}")
        base, extra = divmod(n, shards)
        out, start = [], 0
        for k in range(shards):
            rows = base + (1 if k < extra else 0)
            out.append((start, rows))
            start += rows
        return out
    if rows_per_shard is not None:
        return _fixed(n, rows_per_shard)
    return [(0, n)]


def _fixed(n: int, rows: int) -> list[tuple[int, int]]:
    return [(s, min(rows, n - s)) for s in range(0, n, rows)]


def sspl_num_train_note(rows: int) -> str:
    """What to set in SSPL's arguments to train on ``rows`` packed rows."""
    note = f"SSPL: set --num_train {rows} in its arguments (arguments_train.py)"
    if rows not in (10000, 144000):
        note += (
            "; its dataset code takes the single-file branch only for num_train == 10000 and "
            f"the sharded one only for 144000, so that test must accept {rows} as well"
        )
    return note


def sspl_sharded(shards: int | None, rows_per_shard: int | None, variant: str) -> bool:
    """Whether an SSPL train split is written as numbered shards (``_<split>_1`` ...)."""
    return variant == "train" and (rows_per_shard is not None or (shards or 1) > 1)
