"""``ocean exec`` and ``ocean sql`` against a real server: input from anywhere, errors a CLI user can act on."""
import http.server
import json
import os
import threading
import urllib.request

import pytest

from cliproc import ocean, refused, user_env
from serverproc import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(server):
    """A user's shell: OCEAN_URL and OCEAN_KEY set, and a little data."""
    env = user_env(OCEAN_URL=server.url, OCEAN_KEY=server.key)
    run = ocean("exec", "incr cli/daily @2026-02-10 .page_views 3\nincr cli/daily @2026-02-11 .page_views", env=env)
    assert run.returncode == 0, run.stderr
    return env


def raw_answer(server, path: str, text: str) -> bytes:
    req = urllib.request.Request(server.url + path, data=text.encode(), method="POST",
                                 headers={"X-Ocean-Key": server.key, "Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def test_exec_a_script_from_an_argument_a_file_or_standard_input(env, tmp_path):
    script = "read cli/daily @2026-02-10\n"
    (tmp_path / "s.drops").write_text(script)
    runs = [ocean("exec", script, env=env), ocean("exec", "-f", str(tmp_path / "s.drops"), env=env),
            ocean("exec", "-", input=script, env=env), ocean("exec", input=script, env=env),
            ocean("exec", "-f", "-", input=script, env=env)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"page_views": 3}


def test_exec_dash_is_standard_input_not_a_route(env):
    run = ocean("exec", "-", input="", env=env)
    assert run.returncode == 0 and run.stdout == "" and run.stderr == ""


def test_exec_a_missing_or_unreadable_file_is_one_line(env, tmp_path):
    refused(ocean("exec", "-f", "nope.drops", cwd=tmp_path, env=env), 1, "cannot read nope.drops", "-f")
    (tmp_path / "bin.drops").write_bytes(b"\xff\xfe\x00")
    refused(ocean("exec", "-f", str(tmp_path / "bin.drops"), env=env), 1, "not UTF-8")
    refused(ocean("exec", "-f", str(tmp_path), env=env), 1, "cannot read")
    refused(ocean("exec", "read a @b", "-f", "x.drops", env=env), 2, "not both")


def test_a_failing_command_exits_1_with_its_position(env):
    run = ocean("exec", "read cli/daily @2026-02-10\nget cli/daily @missing", env=env)
    assert run.returncode == 1 and json.loads(run.stdout) == {"page_views": 3}
    assert "line 2:" in run.stderr and "not_found" in run.stderr
    run = ocean("exec", "frobnicate cli/daily", env=env)
    assert run.returncode == 1 and "line 1:" in run.stderr


def test_json_is_the_servers_answer_as_is(server, env):
    script = "read cli/daily @2026-02-10\nget cli/daily @missing"
    run = ocean("exec", "--json", script, env=env)
    assert run.returncode == 1
    body = raw_answer(server, "/exec", script)
    assert run.stdout.encode() == body + (b"" if body.endswith(b"\n") else b"\n")
    query = 'SELECT key, page_views FROM "cli/daily" ORDER BY key'
    run = ocean("sql", "--json", query, env=env)
    assert run.returncode == 0
    body = raw_answer(server, "/sql", query)
    assert run.stdout.encode() == body + (b"" if body.endswith(b"\n") else b"\n")


def test_sql_prints_a_table_from_an_argument_or_standard_input(env):
    query = 'SELECT key AS date, page_views FROM "cli/daily" ORDER BY key DESC'
    for run in (ocean("sql", query, env=env), ocean("sql", "-", input=query, env=env)):
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines[0].split() == ["date", "|", "page_views"] and "2026-02-11" in lines[2]
        assert lines[-1] == "(2 rows)"


def test_a_bad_query_is_the_servers_error(env):
    run = ocean("sql", "SELECT FROM WHERE", env=env)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("error: ") and "(parse_error)" in run.stderr


@pytest.mark.parametrize("cmd", [["exec", "read cli/daily @2026-02-10"], ["sql", 'SELECT * FROM "cli/daily"']])
def test_no_key_says_how_a_cli_user_gives_one(server, cmd):
    run = ocean(*cmd, env=user_env(OCEAN_URL=server.url))
    line = refused(run, 1, "OCEAN_KEY", "--key")
    assert "X-Ocean-Key" not in line
    run = ocean(*cmd, "--key", "ok_not-a-key", env=user_env(OCEAN_URL=server.url))
    refused(run, 1, "does not know this key", "OCEAN_KEY", "ocean key create")


def test_a_key_without_the_scope_says_which_key_to_make(server, env):
    run = ocean("key", "create", "--read", "other/*", "--json", "--data", server.data)
    token = json.loads(run.stdout)["token"]
    run = ocean("exec", "read cli/daily @2026-02-10", "--key", token, env=env)
    assert run.returncode == 1 and "forbidden" in run.stderr and "ocean key create" in run.stderr
    run = ocean("sql", 'SELECT * FROM "cli/daily"', "--key", token, env=env)
    assert run.returncode == 1 and "ocean key create" in run.stderr


@pytest.mark.parametrize("cmd", [["exec", "read a @b"], ["sql", "SELECT 1"]])
def test_no_server_there_is_one_line(cmd):
    run = ocean(*cmd, "--url", f"http://127.0.0.1:{free_port()}", env=user_env(OCEAN_KEY="k"))
    refused(run, 1, "cannot reach", "ocean serve", "--url")
    run = ocean(*cmd, "--url", "127.0.0.1:8080", env=user_env(OCEAN_KEY="k"))
    refused(run, 2, "--url http://127.0.0.1:8080")
    run = ocean(*cmd, "--url", "http://127.0.0.1:99999", env=user_env(OCEAN_KEY="k"))
    refused(run, 2, "not a URL")


def test_an_answer_that_is_not_oceans_is_one_line(env):
    """--url at some other web server: say so, in one line."""

    class NotOcean(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), NotOcean)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        for cmd in (["sql", "SELECT 1"], ["exec", "read a @b"]):
            run = ocean(*cmd, "--url", f"http://127.0.0.1:{other.server_port}", env=env)
            line = refused(run, 1, "not ocean's JSON", "--url")
            assert run.stderr.strip() == line
    finally:
        other.shutdown()
        other.server_close()
        thread.join(10)


def test_a_key_made_beside_a_running_server_works_at_once(server):
    """The server's own data directory is an ocean data directory: no --init, the key works."""
    run = ocean("key", "create", "--read", "cli/*", "--data", server.data)
    assert run.returncode == 0, run.stderr
    assert os.path.join(server.data, "keys.json") in run.stderr
    token = run.stdout.split()[1]
    run = ocean("exec", "read cli/daily @2026-02-10", "--key", token, env=user_env(OCEAN_URL=server.url))
    assert run.returncode == 0, run.stderr
