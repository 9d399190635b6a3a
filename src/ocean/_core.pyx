# cython: language_level=3
"""ocean's compiled kernels: counter shards, the Drops lexer's byte loop, column scans,
the log's bytes (CRC, memory-mapped appender, binary incr records) and the
engine's compiled increment path, and the sketches (HyperLogLog, DDSketch).

Each kernel family lives in its own ``.pxi`` include so it can be read in one
sitting; ``ocean/_reference/`` holds the pure-Python twin of each (same names,
same errors), which the tests use as the oracle.
"""

IMPLEMENTATION = "compiled"

include "_counters.pxi"
include "_lexer.pxi"
include "_scan.pxi"
include "_log.pxi"
include "_writer.pxi"
include "_sketch.pxi"
