"""Reliability tests import ``probes`` and ``hostile`` from here (``make_server`` is in tests/conftest.py)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
