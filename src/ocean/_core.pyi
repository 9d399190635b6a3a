"""Type stubs for ``ocean._core``, the compiled kernels (one section per ``.pxi``)."""
from collections.abc import Iterable, Sequence

IMPLEMENTATION: str

# ---- counters (_counters.pxi; twin: ocean/_reference/counters.py) ----------------

class CounterTable:
    """Counters sharded by (route, key); one lock per shard, so an entity's fields change together."""

    @property
    def shards(self) -> int: ...
    def __init__(self, shards: int = 64) -> None: ...
    def add(self, route: str, key: str, field: str, amount: int | float) -> int | float: ...
    def add_many(
        self, route: str, key: str, fields: Sequence[str] | Iterable[str], amounts: Sequence[int | float] | Iterable[int | float]
    ) -> list[int | float]: ...
    def set(self, route: str, key: str, field: str, value: int | float) -> None: ...
    def get(self, route: str, key: str, field: str) -> int | float | None: ...
    def entity(self, route: str, key: str) -> dict[str, int | float]: ...
    def delete_entity(self, route: str, key: str) -> int: ...
    def delete_field(self, route: str, key: str, field: str) -> bool: ...
    def export(self) -> list[tuple[str, str, str, int | float]]: ...
    def __len__(self) -> int: ...
    def entity_count(self) -> int: ...

# ---- end counters -----------------------------------------------------------------

# -- lexer (_lexer.pxi; twin: ocean/_reference/lexer.py) ------------------------------

DROPS_TOKEN_KINDS: tuple[str, ...]
DROPS_ERROR_BASE: int
DROPS_LEX_ERRORS: tuple[str, ...]

def drops_lex(data: bytes | bytearray | memoryview) -> list[tuple[int, int, int, int, bytes]]:
    """Split a Drops script into commands ``(start, end, line, column, tokens)``.

    ``tokens`` packs native int32 ``(kind, start, end, line, column)`` quintuples
    (read them with ``struct.iter_unpack("5i", tokens)``); a kind of
    ``DROPS_ERROR_BASE`` or more is a lexical error and ends its command's tokens.
    """
    ...

# -- scans (_scan.pxi; twin: ocean/_reference/scan.py) --------------------------------

import numpy as _np
from numpy.typing import NDArray as _NDArray

def iso_parse(values: _NDArray[_np.object_]) -> tuple[_NDArray[_np.int64], _NDArray[_np.uint8]]:
    """Epoch ms of canonical ISO strings ``YYYY-MM-DDTHH:MM:SS.mmmZ``: (ms, ok); ok 0 for anything else."""
    ...

def hash_group(keys: _NDArray[_np.int64], valid: _NDArray[_np.bool_] | None = None) -> tuple[_NDArray[_np.int64], _NDArray[_np.int64]]:
    """(gid, first): group ids numbered by first appearance (NULL rows form one group), first row of each."""
    ...

def group_count(gid: _NDArray[_np.int64], valid: _NDArray[_np.bool_] | None, ngroups: int) -> _NDArray[_np.int64]:
    """Rows per group (only ``valid`` rows when given)."""
    ...

def group_sum_i64(gid: _NDArray[_np.int64], values: _NDArray[_np.int64], valid: _NDArray[_np.bool_] | None,
                  ngroups: int) -> tuple[_NDArray[_np.int64], _NDArray[_np.int64], bool]:
    """(sums, counts, overflowed) of non-NULL int64 values per group."""
    ...

def group_sum_f64(gid: _NDArray[_np.int64], values: _NDArray[_np.float64], valid: _NDArray[_np.bool_] | None,
                  ngroups: int) -> tuple[_NDArray[_np.float64], _NDArray[_np.int64]]:
    """(sums, counts) of non-NULL float64 values per group."""
    ...

def group_extreme_i64(gid: _NDArray[_np.int64], values: _NDArray[_np.int64], valid: _NDArray[_np.bool_] | None,
                      ngroups: int, is_max: bool) -> tuple[_NDArray[_np.int64], _NDArray[_np.uint8]]:
    """(MIN or MAX, has) of non-NULL int64 values per group."""
    ...

def group_extreme_f64(gid: _NDArray[_np.int64], values: _NDArray[_np.float64], valid: _NDArray[_np.bool_] | None,
                      ngroups: int, is_max: bool) -> tuple[_NDArray[_np.float64], _NDArray[_np.uint8]]:
    """(MIN or MAX, has) of non-NULL float64 values per group; NaN never wins."""
    ...

def top_k_i64(values: _NDArray[_np.int64], k: int) -> _NDArray[_np.int64]:
    """Positions of the k smallest values, smallest first, ties by position (a stable sort's first k)."""
    ...

def top_k_f64(values: _NDArray[_np.float64], k: int) -> _NDArray[_np.int64]:
    """Positions of the k smallest values (no NaN), smallest first, ties by position."""
    ...

# -- end scans ------------------------------------------------------------------------
