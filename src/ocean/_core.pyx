# cython: language_level=3
"""ocean's compiled kernels: counter shards, the Drops lexer's byte loop, column scans.

Each kernel family lives in its own ``.pxi`` include so it can be read in one
sitting; ``ocean/_reference/`` holds the pure-Python twin of each (same names,
same errors), which the tests use as the oracle.
"""

IMPLEMENTATION = "compiled"

include "_counters.pxi"
include "_lexer.pxi"
include "_scan.pxi"
