"""Helpers for the Drops tests: results with volatile values (ids, seqs, times) masked."""
import re

import pytest

_VOLATILE = {"drop_id": "<drop_id>", "seq": "<seq>", "created_at": "<time>", "updated_at": "<time>"}
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def masked(value):
    """``value`` with drop ids, seqs and timestamps replaced by placeholders."""
    if isinstance(value, dict):
        return {k: (_VOLATILE[k] if k in _VOLATILE and v is not None else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and _ISO.match(value):
        return "<time>"
    return value


@pytest.fixture(name="masked")
def _masked_fixture():
    return masked
