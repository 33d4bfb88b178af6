"""Property-based fuzzing of every command schema over MQTT and over REST, against a
real node and a real Mosquitto (issue 9 E). Fixed seed (derandomize) and a small budget
so it runs in `make test` in well under a minute; `make fuzz` runs the long version
(tests/fuzz/run.py).

Properties, for every request: exactly one answer, a valid envelope, the HTTP status
that matches its error code, no internal_error, and a refused command leaves
`config.json` byte for byte as it was. After the run: no thread died, no traceback was
logged, and both transports still answer.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Stats, Target, check, rest_commands, still_answering
from tests.fuzz.strategies import command_schemas, plain, request

EXAMPLES = 200  # per transport: ~20 s for both with node start-up, on an idle machine
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def target():
    t = Target().start()
    yield t
    t.stop()


def assert_clean(stats: Stats) -> None:
    assert stats.answered == stats.sent, stats.problems
    assert stats.bad_envelopes == stats.internal_errors == stats.wrong_http_status == 0, \
        stats.problems
    assert stats.config_changed_by_refused == 0, stats.problems


@pytest.mark.timeout(120)
def test_every_mqtt_request_is_answered_once_and_refusals_change_nothing(target):
    stats = Stats()

    @SETTINGS
    @given(st.one_of(request(), plain()))
    def one(case):
        check(target, stats, "mqtt", *case)
        assert_clean(stats)

    one()
    time.sleep(0.5)  # a second answer to any request would arrive by now
    assert target.extra_mqtt_answers() == 0
    assert still_answering(target) and target.thread_deaths() == 0, target.node.output[-3000:]


@pytest.mark.timeout(120)
def test_every_rest_request_is_answered_and_refusals_change_nothing(target):
    stats = Stats()

    @SETTINGS
    @given(request(rest_commands(target, sorted(command_schemas()))))
    def one(case):
        check(target, stats, "rest", *case)
        assert_clean(stats)

    one()
    assert still_answering(target) and target.thread_deaths() == 0, target.node.output[-3000:]
