"""Fixtures for the SQL tests (helpers live in sqlcases.py)."""
import pytest
from sqlcases import FixtureEngine, oracle_connection


@pytest.fixture(scope="module")
def fixture_engine():
    """The fixed rows of tests/sql/data/fixture.json behind the engine's read contract."""
    return FixtureEngine()


@pytest.fixture(scope="module")
def oracle(fixture_engine):
    """sqlite3 in memory holding the same rows, one table per route and per prefix."""
    return oracle_connection(fixture_engine)
