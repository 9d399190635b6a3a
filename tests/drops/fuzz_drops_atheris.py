"""atheris target for ``ocean.drops.run`` (run by test_drops_fuzz.py, or by hand for longer).

    PYTHONPATH=src python tests/drops/fuzz_drops_atheris.py -runs=100000 -max_len=512

Any input must give a list of non-internal results or ScriptTooLarge.
"""
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["ocean.drops", "ocean.model"]):
    from ocean import Engine
    from ocean.drops import run
    from ocean.errors import ScriptTooLarge

ENGINE = Engine(tempfile.mkdtemp(prefix="ocean-fuzz-"), maintenance=False, fsync="no")


def one_input(data: bytes) -> None:
    try:
        results = run(ENGINE, data)
    except ScriptTooLarge:
        return
    for res in results:
        if not res["ok"] and res["code"] == "internal":
            raise AssertionError(f"internal error for {data!r}: {res}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
