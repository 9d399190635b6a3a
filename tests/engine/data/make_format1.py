"""Writes ``format1/``: a data directory made by ocean before columnar events (snapshot format 1).

Run once with that release (main at 68da326) to remake it:
``PYTHONPATH=<old checkout>/src python tests/engine/data/make_format1.py``. It holds a format-1
snapshot (one JSON line per event) and log records after it, and ``expected.json``: what the
old release answered for each route, which ``test_event_chunks.py`` asks the new one.
"""
import json
import os
import shutil

import ocean

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOADS = [
    {"path": "/a", "status": 200, "ms": 12.5}, {"ms": 1.0, "status": 1, "ok": True},
    {"n": None, "z": "", "b": False}, {"big": 2 ** 70, "neg": -(2 ** 63)}, {"nested": {"a": [1, 2.0, None]}},
    "a bare string", [1, "two", 3.0], 7, {"mixed": 1}, {"mixed": "one"}, {"mixed": 1.5}, {},
    {"uni": "h\u00e9llo \u2603 \U0001F600"}, {"b": 1, "a": 2}, {"a": 2, "b": 1},
]


def main():
    target = os.path.join(HERE, "format1")
    shutil.rmtree(target, ignore_errors=True)
    eng = ocean.Engine(target)
    for i in range(300):
        eng.drop("web/hits", PAYLOADS[i % len(PAYLOADS)], source="api" if i % 3 else None)
    eng.drop("web/kept", {"k": 1}, keep=10 ** 9)
    eng.save("web/users", {"name": "ada"}, key="u1")
    eng.snapshot()
    for i in range(20):  # after the snapshot: in the log only
        eng.drop("web/hits", PAYLOADS[i % len(PAYLOADS)], source="late")
    expected = {r: eng.events(r, 10000) for r in ("web/hits", "web/kept")}
    eng.close()
    os.remove(os.path.join(target, "ocean.lock")) if os.path.exists(os.path.join(target, "ocean.lock")) else None
    with open(os.path.join(HERE, "format1_expected.json"), "w") as f:
        json.dump(expected, f, indent=0)


if __name__ == "__main__":
    main()
