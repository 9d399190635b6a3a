"""``ocean`` itself: the bare command lists the commands, usage errors exit 2, a closed pipe is quiet."""
import json
import os
import subprocess
import sys

from cliproc import ocean, user_env


def test_bare_ocean_lists_the_commands():
    run = ocean()
    assert run.returncode == 2
    assert "arguments are required" not in run.stderr
    for cmd in ("serve", "exec", "sql", "key"):
        assert f"    {cmd} " in run.stderr, run.stderr


def test_bare_key_lists_its_commands():
    run = ocean("key")
    assert run.returncode == 2 and "arguments are required" not in run.stderr
    for cmd in ("create", "list", "revoke"):
        assert f"    {cmd} " in run.stderr, run.stderr


def test_help_and_version_exit_0():
    assert ocean("--version").stdout.startswith("ocean ")
    for args in (["--help"], ["serve", "--help"], ["exec", "--help"], ["sql", "--help"], ["key", "create", "--help"]):
        run = ocean(*args)
        assert run.returncode == 0 and run.stdout.startswith("usage: ocean"), args


def test_unknown_commands_and_flags_are_usage_errors():
    for args in (["frobnicate"], ["serve", "--no-such-flag"], ["serve", "--fsync", "sometimes"], ["sql"],
                 ["exec", "x", "--timeout", "soon"], ["key", "wipe"]):
        run = ocean(*args)
        assert run.returncode == 2 and "usage: ocean" in run.stderr, (args, run.stderr)


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    """``ocean key list --json | head``: exit 141 as any Unix tool would, with nothing on stderr."""
    data = tmp_path / "data"
    data.mkdir()
    keys = [{"id": f"k_{i:012x}", "name": f"key-{i}", "read": ["*"], "write": [], "admin": False,
             "created_at": "2026-01-01T00:00:00.000Z", "revoked_at": None, "hash": "0" * 64} for i in range(5000)]
    (data / "keys.json").write_text(json.dumps({"version": 1, "keys": keys}))  # ~1 MB of output, past any pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "ocean", "key", "list", "--json", "--data", str(data)],
                            env=user_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.read(100).startswith(b"[")
        proc.stdout.close()  # what `head` does when it has its lines
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 141
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Error" not in err and "Traceback" not in err and "Exception" not in err, err
    assert err.strip() == f"ocean: key file {os.path.join(data, 'keys.json')}"
