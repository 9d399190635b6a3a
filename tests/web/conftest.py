"""In-process fixtures: the falcon app over a real engine in a temporary data directory."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from webapp import Web  # noqa: E402


@pytest.fixture
def make_web(tmp_path):
    made = []

    def make(**overrides):
        w = Web(tmp_path / f"data{len(made)}", **overrides)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def web(make_web):
    return make_web()
