"""The architecture holds: a pure core, I/O at the edge (STYLE.md)."""
import ast
import pathlib
import sys

import ocean

SRC = pathlib.Path(ocean.__file__).parent
GEVENT_ALLOWED = {"web/gunicorn_conf.py", "web/serving.py", "web/worker.py"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(("." * node.level) + node.module)
    return names


def _modules():
    for path in SRC.rglob("*.py"):
        yield path.relative_to(SRC).as_posix(), _imports(path)


def test_only_web_imports_falcon():
    offenders = [rel for rel, names in _modules()
                 if not rel.startswith("web/") and any(n.split(".")[0] == "falcon" for n in names)]
    assert offenders == []


def test_only_the_serving_entry_point_imports_gevent():
    offenders = [rel for rel, names in _modules()
                 if rel not in GEVENT_ALLOWED and any(n.split(".")[0] == "gevent" for n in names)]
    assert offenders == []


def test_core_packages_do_not_import_the_web_layer():
    for rel, names in _modules():
        if rel.split("/")[0] in ("engine", "drops", "sql") or rel in ("model.py", "errors.py", "settings.py"):
            assert not any("web" in n.split(".") for n in names), rel


def test_engine_knows_nothing_of_languages():
    for rel, names in _modules():
        if rel.startswith("engine/"):
            assert not any(part in ("drops", "sql") for n in names for part in n.split(".")), rel


def test_test_module_names_are_unique():
    """pytest imports test modules by basename (rootdir-relative imports): two alike names break collection."""
    tests = pathlib.Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_the_client_speaks_only_http():
    """``ocean.client`` is stdlib plus the error catalog and the route/key checks: no server inside."""
    allowed_ocean = {"..errors", "..model", ".client", ".stream", ".transport"}
    for rel, names in _modules():
        if rel.startswith("client/"):
            ocean_names = {n for n in names if n.startswith(".")}
            assert ocean_names <= allowed_ocean, (rel, ocean_names - allowed_ocean)
            third_party = {n.split(".")[0] for n in names if not n.startswith(".")} - set(sys.stdlib_module_names)
            assert third_party <= {"__future__"}, (rel, third_party)
