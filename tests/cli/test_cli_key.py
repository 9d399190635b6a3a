"""``ocean key``: only on a data directory ocean made (or with --init), says where the keys went, names clash loudly."""
import json
import os

import pytest

from cliproc import ocean, refused

from ocean import Engine


@pytest.fixture
def served_dir(tmp_path):
    """A data directory as `ocean serve` leaves it (meta.json, ocean.lock, log), closed."""
    path = tmp_path / "data"
    Engine(str(path), maintenance=False).close()
    return str(path)


def keys_of(data) -> list:
    with open(os.path.join(data, "keys.json")) as f:
        return json.load(f)["keys"]


def test_no_data_dir_here_is_refused_and_nothing_is_made(tmp_path):
    for args in (["create", "--read", "analytics/*"], ["list"], ["revoke", "dashboard"]):
        run = ocean("key", *args, cwd=tmp_path)
        line = refused(run, 1, str(tmp_path / "ocean-data"), "does not exist", "--data", "OCEAN_DATA")
        assert ("--init" in line) == (args[0] == "create")
        assert run.stdout == "" and os.listdir(tmp_path) == []


def test_a_directory_ocean_did_not_make_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    run = ocean("key", "create", "--read", "*", "--data", str(tmp_path / "photos"))
    refused(run, 1, "is not an ocean data directory", "--data")
    assert os.listdir(tmp_path / "photos") == ["cat.jpg"]
    (tmp_path / "file").write_text("x")
    refused(ocean("key", "create", "--read", "*", "--data", str(tmp_path / "file"), "--init"), 1, "not a directory")
    refused(ocean("key", "create", "--read", "*", "--data", "/proc/nonexistent/x", "--init"), 1, "--data")


def test_init_starts_a_data_directory_and_says_where_the_keys_went(tmp_path):
    run = ocean("key", "create", "--read", "analytics/*", "--init", "--data", "new", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where = str(tmp_path / "new" / "keys.json")
    assert f"ocean: key file {where}" in run.stderr
    assert run.stdout.startswith("key: ok_")
    # from then on it is a data directory: no --init needed, and the path is shown each time
    run = ocean("key", "list", "--data", str(tmp_path / "new"))
    assert run.returncode == 0 and where in run.stderr and "analytics/*" in run.stdout


def test_a_directory_a_server_made_just_works(served_dir):
    run = ocean("key", "create", "--read", "analytics/*", "--name", "dashboard", "--json", "--data", served_dir)
    assert run.returncode == 0, run.stderr
    made = json.loads(run.stdout)
    assert made["token"].startswith("ok_") and [k["id"] for k in keys_of(served_dir)] == [made["id"]]
    assert os.path.join(served_dir, "keys.json") in run.stderr


def test_an_admin_key_shows_what_it_may_do(served_dir):
    run = ocean("key", "create", "--admin", "--name", "ops", "--data", served_dir)
    assert run.returncode == 0, run.stderr
    assert "read *  write *  admin" in run.stdout
    listed = ocean("key", "list", "--data", served_dir).stdout.splitlines()
    row = [cell.strip() for cell in listed[2].split("|")]
    assert row[1:5] == ["ops", "*", "*", "true"], listed


def test_a_shared_name_is_noted_and_revoke_by_it_lists_the_ids(served_dir):
    first = json.loads(ocean("key", "create", "--read", "analytics/*", "--name", "dashboard", "--json",
                             "--data", served_dir).stdout)
    run = ocean("key", "create", "--read", "analytics/*", "--name", "dashboard", "--json", "--data", served_dir)
    assert run.returncode == 0  # the docs make two keys of one name: allowed, with a note
    second = json.loads(run.stdout)
    assert "2 live keys are now named 'dashboard'" in run.stderr and first["id"] in run.stderr
    run = ocean("key", "revoke", "dashboard", "--data", served_dir)
    refused(run, 1, first["id"], second["id"], "by its id")
    assert all(k["revoked_at"] is None for k in keys_of(served_dir))
    assert ocean("key", "revoke", second["id"], "--data", served_dir).returncode == 0
    run = ocean("key", "revoke", "dashboard", "--data", served_dir)  # one live one left: the name is enough
    assert run.returncode == 0 and first["id"] in run.stdout
    refused(ocean("key", "revoke", "dashboard", "--data", served_dir), 1, "already revoked")
    refused(ocean("key", "revoke", "nobody", "--data", served_dir), 1, "ocean key list")


def test_bad_scopes_are_usage_errors(served_dir):
    refused(ocean("key", "create", "--data", served_dir), 2, "--read PREFIX", "--admin")
    refused(ocean("key", "create", "--read", "/analytics", "--data", served_dir), 2, "a scope is")
    refused(ocean("key", "create", "--write", "a b", "--data", served_dir), 2, "a scope is")
    assert not os.path.exists(os.path.join(served_dir, "keys.json"))


def test_a_damaged_key_file_is_one_line(served_dir):
    with open(os.path.join(served_dir, "keys.json"), "w") as f:
        f.write("{not json")
    for args in (["list"], ["create", "--read", "*"], ["revoke", "x"]):
        refused(ocean("key", *args, "--data", served_dir), 1, "cannot read the key file")
