"""The Redis store (issue 15): ocean's data in Redis Cluster or one Redis server.

``RedisEngine`` answers the data operations as ``ocean.engine.Engine`` does; the layout and
the atomic write steps are Redis Functions in ``ocean.lua``; ``docs/scale-out.md`` explains both.
Needs redis-py (``pip install 'redis[hiredis]'``), imported only when this store is used.
"""
from .engine import RedisEngine

__all__ = ["RedisEngine"]
