"""Random operation sequences, with reopens in between, against a plain-dict model."""
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from ocean import Engine, errors

ROUTES = st.sampled_from(["a", "a/b", "c"])
KEYS = st.sampled_from(["k1", "k2", "k3"])
FIELDS = st.sampled_from(["x", "y", "z"])
AMOUNTS = st.one_of(st.integers(-5, 5), st.integers(2 ** 62, 2 ** 63 - 1))
VALUES = st.one_of(st.integers(-3, 3), st.text(max_size=3))

OPS = st.one_of(
    st.tuples(st.just("incr"), ROUTES, KEYS, st.dictionaries(FIELDS, AMOUNTS, min_size=1, max_size=2)),
    st.tuples(st.just("save"), ROUTES, KEYS, st.dictionaries(FIELDS, VALUES, max_size=2)),
    st.tuples(st.just("update"), ROUTES, KEYS, st.dictionaries(FIELDS, VALUES, min_size=1, max_size=2)),
    st.tuples(st.just("remove"), ROUTES, KEYS, st.none()),
    st.tuples(st.just("event"), ROUTES, st.none(), st.dictionaries(FIELDS, VALUES, max_size=2)),
    st.tuples(st.just("reopen"), st.none(), st.none(), st.none()),
)


class Model:
    """What the engine should hold: plain fields and counters per entity, events per route."""

    def __init__(self):
        self.plain, self.counts, self.events = {}, {}, {}

    def apply(self, op, route, key, arg):
        ek = (route, key)
        if op == "event":
            self.events.setdefault(route, []).append(arg)
            return
        exists = ek in self.plain
        plain, counts = dict(self.plain.get(ek, {})), dict(self.counts.get(ek, {}))
        if op == "remove":
            if not exists:
                raise errors.NotFound("x")
            self.plain.pop(ek)
            self.counts.pop(ek, None)
            return
        if op == "save":
            plain = {}
        if op in ("save", "update"):
            for f, v in arg.items():
                if f in counts:
                    if type(v) is not int:
                        raise errors.NotACounter("x")
                    counts[f] = v
                else:
                    plain[f] = v
        if op == "incr":
            for f, a in arg.items():
                base = counts.get(f, 0)
                if f in plain:
                    if type(plain[f]) is not int:
                        raise errors.NotACounter("x")
                    base = plain.pop(f)
                if not -(2 ** 63) <= base + a < 2 ** 63:
                    raise errors.CounterOverflow("x")
                counts[f] = base + a
        self.plain[ek], self.counts[ek] = plain, counts

    def entity(self, route, key):
        if (route, key) not in self.plain:
            return None
        return {**self.plain[(route, key)], **self.counts.get((route, key), {})}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=40))
def test_engine_matches_model(ops):
    path = tempfile.mkdtemp()
    eng = Engine(path, maintenance=False)
    model = Model()
    try:
        for op, route, key, arg in ops:
            if op == "reopen":
                eng.close()
                eng = Engine(path, maintenance=False)
                continue
            expected_error = None
            try:
                model_copy = (dict(model.plain), dict(model.counts))
                model.apply(op, route, key, arg)
            except errors.OceanError as exc:
                expected_error = type(exc)
                model.plain, model.counts = model_copy
            try:
                if op == "incr":
                    eng.incr(route, key, arg)
                elif op == "save":
                    eng.save(route, arg, key=key)
                elif op == "update":
                    eng.update(route, key, arg)
                elif op == "remove":
                    eng.remove(route, key)
                else:
                    eng.save(route, arg)
                assert expected_error is None, f"{op} should have raised {expected_error}"
            except errors.OceanError as exc:
                assert isinstance(exc, expected_error or ()), f"{op} {arg}: {exc!r}"
            for r in ("a", "a/b", "c"):
                for k in ("k1", "k2", "k3"):
                    got = eng.entity(r, k)
                    assert (got["payload"] if got else None) == model.entity(r, k)
                assert [e["payload"] for e in eng.route_events(r)] == model.events.get(r, [])
    finally:
        eng.close()
        shutil.rmtree(path, ignore_errors=True)
