"""CounterTable: every behaviour runs against the compiled core and its pure twin."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import ocean
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocean._core as compiled
import ocean._reference as pure
from ocean.errors import CounterOverflow, InvalidAmount

# where the ocean under test lives (the source tree, or site-packages after pip install)
SRC = str(Path(ocean.__file__).resolve().parents[1])
MAX = (1 << 63) - 1
MIN = -(1 << 63)


@pytest.fixture(params=[compiled, pure], ids=["compiled", "pure"])
def impl(request):
    return request.param


@pytest.fixture
def t(impl):
    return impl.CounterTable(shards=8)


@pytest.fixture
def fast_switching():
    """Make threads switch often, so races actually interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_add_starts_at_zero_and_returns_the_new_value(t):
    assert t.add("a/b", "k", "views", 1) == 1
    assert t.add("a/b", "k", "views", 41) == 42
    assert t.add("a/b", "k", "views", -50) == -8
    assert t.get("a/b", "k", "views") == -8
    assert type(t.get("a/b", "k", "views")) is int


def test_get_missing_is_none(t):
    assert t.get("a", "k", "f") is None
    t.add("a", "k", "f", 1)
    assert t.get("a", "k", "g") is None
    assert t.get("a", "other", "f") is None


def test_add_many_returns_values_in_order_and_duplicates_accumulate(t):
    assert t.add_many("r", "k", ["a", "b", "a"], [1, 10, 2]) == [1, 10, 3]
    assert t.entity("r", "k") == {"a": 3, "b": 10}
    assert t.add_many("r", "k", ("b",), (5,)) == [15]


def test_add_many_accepts_dict_views(t):
    amounts = {"x": 1, "y": 2.5}
    assert t.add_many("r", "k", amounts.keys(), amounts.values()) == [1, 2.5]


def test_add_many_length_mismatch(t):
    with pytest.raises(ValueError):
        t.add_many("r", "k", ["a", "b"], [1])


def test_add_many_empty_stores_nothing(t):
    assert t.add_many("r", "k", [], []) == []
    assert t.entity_count() == 0
    assert t.entity("r", "k") == {}


def test_int_plus_float_promotes_to_float(t):
    t.add("r", "k", "f", 2)
    assert t.add("r", "k", "f", 0.5) == 2.5
    assert type(t.get("r", "k", "f")) is float
    # stays float even when the value is integral again
    assert t.add("r", "k", "f", 0.5) == 3.0
    assert type(t.add("r", "k", "f", 1)) is float


def test_set_replaces_value_and_type(t):
    t.add("r", "k", "f", 5.5)
    t.set("r", "k", "f", 7)
    assert t.get("r", "k", "f") == 7 and type(t.get("r", "k", "f")) is int
    t.set("r", "k", "g", 1.25)
    assert t.entity("r", "k") == {"f": 7, "g": 1.25}
    t.set("r", "k", "h", MAX)
    assert t.get("r", "k", "h") == MAX


def test_entity_is_a_copy_in_field_order(t):
    t.add_many("r", "k", ["b", "a", "c"], [1, 2, 3])
    e = t.entity("r", "k")
    assert list(e) == ["b", "a", "c"]
    e["a"] = 99
    assert t.get("r", "k", "a") == 2
    assert t.entity("r", "none") == {}


def test_delete_entity_and_field(t):
    t.add_many("r", "k", ["a", "b"], [1, 2])
    t.add("r", "k2", "a", 1)
    assert len(t) == 3 and t.entity_count() == 2
    assert t.delete_field("r", "k", "a") is True
    assert t.delete_field("r", "k", "a") is False
    assert t.delete_field("r", "nope", "a") is False
    assert t.entity("r", "k") == {"b": 2}
    assert len(t) == 2
    assert t.delete_field("r", "k", "b") is True
    assert t.entity_count() == 1  # an entity without counters is gone
    assert t.delete_entity("r", "k2") == 1
    assert t.delete_entity("r", "k2") == 0
    assert len(t) == 0 and t.entity_count() == 0
    # a deleted field starts again from zero, as an int
    t.add("r", "k", "a", 2.5)
    t.delete_field("r", "k", "a")
    assert t.add("r", "k", "a", 1) == 1 and type(t.get("r", "k", "a")) is int


def test_export_lists_every_counter(t):
    t.add_many("r/x", "k1", ["a", "b"], [1, 2.5])
    t.add("r/y", "k2", "c", -3)
    assert sorted(t.export()) == [("r/x", "k1", "a", 1), ("r/x", "k1", "b", 2.5), ("r/y", "k2", "c", -3)]
    assert len(t) == 3 and t.entity_count() == 2


def test_many_entities_spread_over_shards(t):
    for i in range(500):
        t.add_many("r", f"k{i}", ["a", "b"], [i, 1])
    assert len(t) == 1000 and t.entity_count() == 500
    assert sum(v for (_, _, f, v) in t.export() if f == "a") == sum(range(500))


def test_entity_with_many_fields_grows(t):
    fields = [f"f{i}" for i in range(3000)]
    assert t.add_many("r", "k", fields, list(range(3000))) == list(range(3000))
    assert t.add_many("r", "k", fields, [1] * 3000) == list(range(1, 3001))
    assert len(t) == 3000
    for i in range(0, 3000, 2):
        t.delete_field("r", "k", f"f{i}")
    assert t.add("r", "k", "new", 1) == 1  # reuses a freed slot
    assert t.entity("r", "k") == {**{f"f{i}": i + 1 for i in range(1, 3000, 2)}, "new": 1}


def test_int64_overflow_raises_and_leaves_value(t):
    t.set("r", "k", "f", MAX)
    with pytest.raises(CounterOverflow) as exc:
        t.add("r", "k", "f", 1)
    assert exc.value.code == "overflow"
    assert t.get("r", "k", "f") == MAX
    t.set("r", "k", "g", MIN)
    with pytest.raises(CounterOverflow):
        t.add("r", "k", "g", -1)
    assert t.get("r", "k", "g") == MIN
    assert t.add("r", "k", "f", -MAX) == 0


def test_float_overflow_to_infinity_raises(t):
    t.set("r", "k", "f", 1.7e308)
    with pytest.raises(CounterOverflow):
        t.add("r", "k", "f", 1.7e308)
    assert t.get("r", "k", "f") == 1.7e308


def test_add_many_overflow_applies_nothing(t):
    t.add_many("r", "k", ["a", "big"], [1, MAX])
    with pytest.raises(CounterOverflow):
        t.add_many("r", "k", ["a", "new", "big"], [5, 7, 1])
    assert t.entity("r", "k") == {"a": 1, "big": MAX}
    assert len(t) == 2
    # a duplicate that overflows inside one batch rolls back the first one too
    with pytest.raises(CounterOverflow):
        t.add_many("r", "k", ["n", "n"], [MAX, 1])
    assert t.entity("r", "k") == {"a": 1, "big": MAX}
    # on a fresh entity nothing at all is stored
    with pytest.raises(CounterOverflow):
        t.add_many("r", "fresh", ["x", "y", "x"], [MAX, 1, 1])
    assert t.entity("r", "fresh") == {} and t.entity_count() == 1 and len(t) == 2


@pytest.mark.parametrize(
    "amount", [True, False, "1", None, float("nan"), float("inf"), -float("inf"), 1 << 63, MIN - 1, [1], 1j]
)
def test_invalid_amounts(t, amount):
    t.add("r", "k", "f", 3)
    with pytest.raises(InvalidAmount) as exc:
        t.add("r", "k", "f", amount)
    assert exc.value.code == "invalid_amount"
    with pytest.raises(InvalidAmount):
        t.add_many("r", "k", ["f", "g"], [1, amount])
    with pytest.raises(InvalidAmount):
        t.set("r", "k", "f", amount)
    assert t.entity("r", "k") == {"f": 3}


def test_int64_bounds_are_valid_amounts(t):
    assert t.add("r", "k", "a", MAX) == MAX
    assert t.add("r", "k", "b", MIN) == MIN


@pytest.mark.parametrize("bad", [None, 1, b"k", ("a",)])
def test_names_must_be_str(t, bad):
    with pytest.raises(TypeError):
        t.add(bad, "k", "f", 1)
    with pytest.raises(TypeError):
        t.add("r", bad, "f", 1)
    with pytest.raises(TypeError):
        t.add("r", "k", bad, 1)
    with pytest.raises(TypeError):
        t.add_many("r", "k", ["f", bad], [1, 1])
    with pytest.raises(TypeError):
        t.get("r", "k", bad)
    assert len(t) == 0


def test_shards_must_be_positive(impl):
    with pytest.raises(ValueError):
        impl.CounterTable(shards=0)
    assert impl.CounterTable().shards == 64
    one = impl.CounterTable(shards=1)
    one.add("a", "b", "c", 1)
    one.add("x", "y", "z", 1)
    assert len(one) == 2


def test_same_error_messages(impl):
    def messages(table):
        out = []
        table.set("r", "k", "f", MAX)
        for args in (("f", 1), ("g", True), ("g", float("nan")), ("g", 1 << 64), ("g", "x")):
            try:
                table.add("r", "k", *args)
            except Exception as exc:  # noqa: BLE001 - comparing messages
                out.append((type(exc).__name__, str(exc)))
        table.set("r", "k", "h", 1e308)
        try:
            table.add("r", "k", "h", 1e308)
        except CounterOverflow as exc:
            out.append(str(exc))
        return out

    assert messages(compiled.CounterTable()) == messages(pure.CounterTable())


@pytest.mark.parametrize("batch", [False, True], ids=["add", "add_many"])
def test_threads_lose_no_increment(impl, batch, fast_switching):
    table = impl.CounterTable(shards=4)
    threads, per = 8, 20000 if not batch else 2000
    start = threading.Barrier(threads)

    def work(n):
        start.wait()
        for _ in range(per):
            if batch:
                table.add_many("r", "hot", ["a", "b", "c"], [1, 2, 1.0])
            else:
                table.add("r", "hot", "a", 1)
                table.add("r", f"k{n}", "a", 1)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    if batch:
        assert table.entity("r", "hot") == {"a": threads * per, "b": 2 * threads * per, "c": float(threads * per)}
    else:
        assert table.get("r", "hot", "a") == threads * per
        assert all(table.get("r", f"k{n}", "a") == per for n in range(threads))
        assert len(table) == threads + 1


def test_mixed_concurrent_ops_keep_counts_consistent(impl, fast_switching):
    """Adds, sets, deletes and reads racing on few entities: the table's counts stay exact."""
    table = impl.CounterTable(shards=2)
    start = threading.Barrier(6)
    errors = []

    def work(n):
        start.wait()
        try:
            for i in range(3000):
                key = f"k{i % 5}"
                op = (i + n) % 6
                if op == 0:
                    table.add_many("r", key, ["a", "b", f"c{n}"], [1, 2.5, 1])
                elif op == 1:
                    table.set("r", key, "a", i)
                elif op == 2:
                    table.delete_field("r", key, "b")
                elif op == 3 and i % 50 == 0:
                    table.delete_entity("r", key)
                elif op == 4:
                    table.entity("r", key)
                else:
                    table.export()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert not errors
    rows = table.export()
    assert len(table) == len(rows)
    assert table.entity_count() == len({(r, k) for r, k, _, _ in rows})
    for r, k, f, v in rows:
        assert table.get(r, k, f) == v


def test_greenlets_under_gevent_monkey_patching():
    """The stripe locks are C locks: gevent's patching leaves them alone and greenlets never block on them."""
    code = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import gevent
        import ocean._core as compiled

        table = compiled.CounterTable(shards=2)

        def work(n):
            for i in range(500):
                table.add_many("r", "hot", ["a", "b"], [1, 2])
                if i % 10 == 0:
                    gevent.sleep(0)

        gevent.joinall([gevent.spawn(work, n) for n in range(100)], timeout=30, raise_error=True)
        print(table.entity("r", "hot"))
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{'a': 50000, 'b': 100000}"


# ---- differential: the compiled core agrees with the twin on random op sequences ----

_names = st.sampled_from(["a", "b", "c", "d"])
_amounts = st.one_of(
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([MAX, MIN, MAX - 1, MIN + 1, 1 << 62]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([1.7e308, -1.7e308, 0.5]),
    st.sampled_from([True, float("nan"), float("inf"), 1 << 63, "1"]),  # invalid
)
_ops = st.one_of(
    st.tuples(st.just("add"), _names, _names, _names, _amounts),
    st.tuples(st.just("add_many"), _names, _names, st.lists(st.tuples(_names, _amounts), max_size=6)),
    st.tuples(st.just("set"), _names, _names, _names, _amounts),
    st.tuples(st.just("get"), _names, _names, _names),
    st.tuples(st.just("entity"), _names, _names),
    st.tuples(st.just("delete_entity"), _names, _names),
    st.tuples(st.just("delete_field"), _names, _names, _names),
    st.tuples(st.just("len")),
)


def _run(table, op):
    name, *args = op
    try:
        if name == "add_many":
            route, key, pairs = args
            result = table.add_many(route, key, [f for f, _ in pairs], [a for _, a in pairs])
        elif name == "len":
            result = (len(table), table.entity_count())
        else:
            result = getattr(table, name)(*args)
    except Exception as exc:  # noqa: BLE001 - comparing outcomes
        return ("error", type(exc).__name__, str(exc))
    return ("ok", _typed(result))


def _typed(value):
    """Compare values with their types (1 and 1.0 differ here)."""
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]  # field order matters too
    if isinstance(value, float):
        return ("float", value if not math.isnan(value) else "nan")
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops, max_size=40), st.sampled_from([1, 3, 64]))
def test_compiled_agrees_with_twin(ops, shards):
    a, b = compiled.CounterTable(shards=shards), pure.CounterTable(shards=shards)
    for op in ops:
        assert _run(a, op) == _run(b, op), op
    assert sorted(a.export(), key=repr) == sorted(b.export(), key=repr)
    assert len(a) == len(b) and a.entity_count() == b.entity_count()


# Field names from 12 choices, so one entity passes the compiled core's scan limit (8 counters)
# and finds its fields through its slot index: adds, deletes and rollbacks there too.
_wide = st.sampled_from([f"f{i}" for i in range(12)])
_wide_ops = st.one_of(
    st.tuples(st.just("add_many"), st.just("r"), st.sampled_from(["k", "j"]),
              st.lists(st.tuples(_wide, _amounts), max_size=14)),
    st.tuples(st.just("set"), st.just("r"), st.sampled_from(["k", "j"]), _wide, _amounts),
    st.tuples(st.just("get"), st.just("r"), st.sampled_from(["k", "j"]), _wide),
    st.tuples(st.just("entity"), st.just("r"), st.sampled_from(["k", "j"])),
    st.tuples(st.just("delete_field"), st.just("r"), st.sampled_from(["k", "j"]), _wide),
    st.tuples(st.just("delete_entity"), st.just("r"), st.sampled_from(["k", "j"])),
    st.tuples(st.just("len")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_wide_ops, max_size=40))
def test_compiled_agrees_with_twin_on_wide_entities(ops):
    a, b = compiled.CounterTable(shards=2), pure.CounterTable(shards=2)
    for op in ops:
        assert _run(a, op) == _run(b, op), op
    assert a.export() == b.export() or sorted(a.export(), key=repr) == sorted(b.export(), key=repr)
    assert len(a) == len(b) and a.entity_count() == b.entity_count()


def test_field_order_survives_delete_and_re_add(t):
    fields = [f"f{i}" for i in range(20)]
    t.add_many("r", "k", fields, [1] * 20)
    t.delete_field("r", "k", "f3")
    t.delete_field("r", "k", "f15")
    t.add("r", "k", "f3", 7)
    assert list(t.entity("r", "k")) == [f for f in fields if f not in ("f3", "f15")] + ["f3"]
    assert t.get("r", "k", "f19") == 1 and t.get("r", "k", "f3") == 7 and t.get("r", "k", "f15") is None


def test_entities_share_one_copy_of_a_field_name():
    """Memory (issue 14): a field name is held once per shard, not once per entity, and is let go
    when no entity holds it."""
    table = compiled.CounterTable(shards=1)
    for i in range(50):
        table.add("r", f"k{i}", "".join(["vi", "ews"]), 1)  # a new str object each time
    names = {id(f) for _, _, f, _ in table.export()}
    assert len(names) == 1
    unique = "".join(["only", "-here"])
    before = sys.getrefcount(unique)
    table.add("r", "k0", unique, 1)
    assert sys.getrefcount(unique) > before
    table.delete_entity("r", "k0")
    assert sys.getrefcount(unique) == before
    table.add_many("r", "k1", [unique, "x"], [1, 2])
    table.delete_field("r", "k1", unique)
    assert sys.getrefcount(unique) == before
