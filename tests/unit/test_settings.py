"""Settings parse and bound their values where they are declared, for every entry point."""
import pytest

from ocean.errors import InvalidSetting
from ocean.settings import BY_NAME, Settings


def test_a_port_past_65535_is_refused_by_the_declaration_itself():
    # `gunicorn -c gunicorn_conf.py` reads settings without the CLI: the bound must live here.
    with pytest.raises(InvalidSetting) as err:
        Settings.load(environ={"OCEAN_PORT": "70000"})
    assert "at most 65535" in err.value.message
    assert Settings.load(environ={"OCEAN_PORT": "65535"}).port == 65535


def test_numbers_are_never_negative_and_booleans_take_the_usual_words():
    with pytest.raises(InvalidSetting):
        BY_NAME["max_batch"].parse("-1")
    assert BY_NAME["accounting"].parse("off") is False
    with pytest.raises(InvalidSetting):
        BY_NAME["accounting"].parse("maybe")
