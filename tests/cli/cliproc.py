"""Run ``ocean`` as a user runs it: a subprocess of ``python -m ocean`` on the ocean the tests imported.

Every run goes through ``ocean()``, which holds the suite's first promise for each case:
no traceback ever reaches a user, on standard error or standard output.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from serverproc import SRC  # noqa: E402


def user_env(**extra) -> dict:
    """This process's environment less any ``OCEAN_*`` setting, running the ocean the tests imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCEAN_") or k == "OCEAN_PUREPYTHON"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def ocean(*args, input=None, cwd=None, env=None, timeout=60) -> subprocess.CompletedProcess:
    """``python -m ocean ARGS`` as a subprocess; asserts that no traceback was shown.

    It runs in its own process group, so a run that hangs (``serve`` that did start) is
    ended whole, by its pid, when ``timeout`` passes.
    """
    argv = [sys.executable, "-m", "ocean", *args]
    proc = subprocess.Popen(argv, cwd=cwd, env=env or user_env(), text=True, start_new_session=True,
                            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group: a worker it may have left, or all of it on timeout
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)
    run = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    shown = run.stdout + run.stderr
    assert "Traceback" not in shown and "Exception ignored" not in shown, shown
    return run


def refused(run: subprocess.CompletedProcess, status: int, *words: str) -> str:
    """Assert a refusal: exit ``status``, one ``ocean:`` line on stderr naming ``words``; the line."""
    assert run.returncode == status, (run.returncode, run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.startswith("ocean: ")]
    assert lines, run.stderr
    for word in words:
        assert word in run.stderr, (word, run.stderr)
    return lines[-1]
