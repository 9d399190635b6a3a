"""The tutorial, verbatim, against a Redis-mode server: the same test functions as
``tests/integration/test_served_tutorial.py``, given a ``server`` that is ``ocean serve --store``
on the session's cluster with 2 workers (so a stream and a write may land on different workers)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from serverproc import Server  # noqa: E402
from test_served_tutorial import (test_cli_exec_and_sql, test_tutorial, test_tutorial_curl_sse_with_key_header,  # noqa: E402,F401
                                  test_tutorial_eventsource_with_key_in_query, test_tutorial_sql)


@pytest.fixture(scope="module")
def server(redis_cluster_session, tmp_path_factory):
    redis_cluster_session.wait_ok(30)
    redis_cluster_session.flush()
    srv = Server(str(tmp_path_factory.mktemp("served") / "data"), store=redis_cluster_session.url, workers=2,
                 heartbeat_s=1).start(timeout=40)
    yield srv
    srv.stop()
