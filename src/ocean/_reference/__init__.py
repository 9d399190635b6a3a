"""Pure-Python twin of ``ocean._core``: the same names and errors, used as the test oracle.

Selected only by ``OCEAN_PUREPYTHON=1`` (see ``ocean.kernels``). Each module
mirrors one ``.pxi`` of the compiled core.
"""
from .counters import CounterTable  # noqa: F401
from .log import (  # noqa: F401
    CRC32C_HARDWARE, MAX_RECORD, RESERVE_CHUNK, LogFile, crc32, crc32c, decode_incr, encode_incr, scan_records,
)
from .lexer import DROPS_ERROR_BASE, DROPS_LEX_ERRORS, DROPS_TOKEN_KINDS, drops_lex  # noqa: F401
from .scan import (group_count, group_extreme_f64, group_extreme_i64, group_sum_f64,  # noqa: F401
                   group_sum_i64, hash_group, iso_parse, top_k_f64, top_k_i64)
from .sketch import Dist, Hll  # noqa: F401
from .writer import Entity, Message, Ring, WriteLock, Writer, replay  # noqa: F401

IMPLEMENTATION = "pure"
