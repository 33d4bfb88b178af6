"""The ZeroMQ command socket answers every message exactly once and keeps answering:
deep nesting, 4,301-digit numbers, NaN, oversize and broken messages, and a handler bug."""

from __future__ import annotations

import json

import pytest
import zmq

from camnode.node.command_server import CommandServer
from tests.unit.test_dispatcher import config_path, node  # noqa: F401  (fixtures)


@pytest.fixture
def ask(node):  # noqa: F811
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(node.store.config.zmq.command)
    tokens = iter(range(10**6))

    def send(body: bytes, timeout_ms: int = 5000) -> dict:
        token = str(next(tokens)).encode()
        dealer.send_multipart([b"", token, body])
        assert dealer.poll(timeout_ms), "the command socket did not answer"
        parts = dealer.recv_multipart()
        assert parts[1] == token
        return json.loads(parts[2])

    yield send
    dealer.close()


def rest(command: str, body: str) -> bytes:
    """What a web worker sends for POST /api/<command> with this body."""
    return json.dumps({"command": command, "payload": body}).encode()


BAD_BODIES = [
    ("[" * 1000 + "]" * 1000, "too_large"),
    ('{"id": ' + "1" * 4301 + "}", "too_large"),
    ('{"name": "n", "left": NaN, "top": 10, "right": 20, "bottom": 30}', "invalid_json"),
    ('{"id": 1e999}', "invalid_json"),
    ("x" * (64 * 1024 + 1), "too_large"),
    ("{", "invalid_json"),
]


@pytest.mark.parametrize("body, code", BAD_BODIES)
def test_bad_rest_bodies_are_answered_and_the_socket_keeps_answering(ask, body, code):
    reply = ask(rest("roi/add", body))
    assert reply["status"] == "error" and reply["error"]["code"] == code, reply
    assert ask(rest("roi/get", '{"id": "after"}'))["id"] == "after"


@pytest.mark.parametrize("message", [
    b"[" * 1000 + b"]" * 1000,
    b'{"command": "roi/get", "payload": {"id": ' + b"1" * 4301 + b"}}",
    b'{"command": "roi/get", "payload": ' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"command": "roi/get", "payload": {"id": NaN}}',
    b'{"command": 5}', b"[]", b"\xff", b"", b"x" * (1024 * 1024),
])
def test_bad_messages_are_answered_and_the_socket_keeps_answering(ask, message):
    reply = ask(message)
    assert reply["status"] == "error"
    assert reply["error"]["code"] in ("invalid_json", "too_large", "validation_failed")
    assert ask(json.dumps({"command": "roi/get", "payload": {"id": 7}}).encode())["id"] == 7


def test_a_failing_dispatcher_is_answered_internal_error_and_logged(caplog):
    def broken(command, payload, allow_internal=True):
        raise RuntimeError("bug")

    server = CommandServer("inproc://unused")
    server.subscribe(broken)
    reply = server._answer(b'{"command": "state/get", "payload": {}}')
    assert reply["error"]["code"] == "internal_error"
    assert "answering a command message failed" in caplog.text and "RuntimeError" in caplog.text
