"""The web side's guards as units: Host/Origin check, login redirect target, shared session
store, credential throttle, command-socket keys. Integration tests run them for real
(tests/integration/test_web_security.py); these pin the edge cases."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import zmq

from camnode.node.curve import ClientKeys, node_keys
from camnode.web.auth import AuthConfig, Throttle, session_key
from camnode.web.handlers import safe_next
from camnode.web.hosts import HostCheck
from camnode.web.sessions import SessionStore


@pytest.mark.parametrize("host, origin, ok", [
    ("localhost:8080", None, True),
    ("LOCALHOST.:8080", None, True),
    ("127.0.0.1:8080", "http://127.0.0.1:8080", True),
    ("[::1]:8080", None, True),
    ("192.168.1.20", None, True),  # any IP literal: an address cannot be rebound
    ("[fe80::1%25eth0]:80", None, True),
    ("cam.example", None, True),  # configured
    ("app.localhost", None, True),
    ("rebind.evil.example", None, False),
    ("evil.example:8080", "http://evil.example:8080", False),
    ("", None, False),
    ("localhost:8080", "http://evil.example", False),  # another site's page
    ("localhost:8080", "null", False),  # sandboxed or file: pages
    ("192.168.1.20:8080", "http://192.168.1.20:9000", False),  # another port, another site
    ("192.168.1.20:8080", "http://6.6.6.6", False),  # IP-literal Origin is not enough
    ("192.168.1.20:8080", "http://cam.example:8443", True),
])
def test_host_check(host, origin, ok):
    check = HostCheck(["cam.example"])
    assert (check.refusal(host, origin) is None) is ok


def test_host_check_can_be_turned_off_and_names_the_config_key():
    assert HostCheck(["*"]).refusal("anything.example", "http://other.example") is None
    assert "web.allowed_hosts" in HostCheck().refusal("evil.example", None)


def test_host_check_knows_the_machines_own_name():
    import socket

    short = socket.gethostname().split(".")[0]
    check = HostCheck.from_system()
    assert check.refusal(short, None) is None and check.refusal(short + ".local", None) is None


@pytest.mark.parametrize("url, ok", [
    ("/", True), ("/api/state?x=1#y", True), ("/%5Cevil", True),
    ("//evil.example", False), ("/\\evil.example", False), ("/\t/evil.example", False),
    ("/\r\nLocation: x", False), ("https://evil.example", False), ("evil", False),
    ("", False), ("/\u00e9", False), ("/a b", False), ("/\x00", False),
])
def test_login_redirect_target(url, ok):
    assert safe_next(url) == (url if ok else "/")


def test_sessions_are_shared_through_the_state_dir_and_revocable(tmp_path):
    worker_a, worker_b = SessionStore(tmp_path), SessionStore(tmp_path)
    sid = worker_a.create("admin")
    assert worker_b.user(sid) == "admin"
    assert worker_b.revoke(sid) and not worker_b.revoke(sid)
    assert worker_a.user(sid) is None
    assert (tmp_path / ".camnode-sessions.json").stat().st_mode & 0o777 == 0o600
    assert sid not in (tmp_path / ".camnode-sessions.json").read_text()  # hashes only


def test_sessions_expire_and_bad_files_log_everyone_out(tmp_path, caplog):
    store = SessionStore(tmp_path, lifetime_s=-1)
    assert store.user(store.create("admin")) is None
    store = SessionStore(tmp_path)
    sid = store.create("admin")
    (tmp_path / ".camnode-sessions.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        assert store.user(sid) is None
    assert "session store" in caplog.text


def test_sessions_without_a_writable_dir_stay_in_memory(tmp_path):
    store = SessionStore(tmp_path / "missing")
    sid = store.create("admin")
    assert store.user(sid) == "admin" and store.revoke(sid) and store.user(sid) is None


def test_session_key_changes_with_the_password():
    a = session_key("s", AuthConfig("admin", "one"))
    assert a == session_key("s", AuthConfig("admin", "one"))
    assert a != session_key("s", AuthConfig("admin", "two"))
    assert a != session_key("t", AuthConfig("admin", "one"))


def test_throttle_delays_grow_and_too_many_waiters_are_refused(caplog):
    async def scenario() -> None:
        t = Throttle(step=0.1, max_delay=0.3, max_waiting=2)
        assert await t.wait("a")  # no failure yet: no wait
        for _ in range(5):
            t.failure("a", "test")
        assert 0.25 < t.delay("a") <= 0.3 and t.delay("b") == 0  # capped, per address
        t0 = time.monotonic()
        results = await asyncio.gather(*(t.wait("a") for _ in range(4)))
        assert sorted(results) == [False, False, True, True]
        assert 0.25 < time.monotonic() - t0 < 1.0
        t.success("a")
        assert t.delay("a") == 0

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert "failed test from a (5 in a row" in caplog.text
    assert "too many credential checks from a" in caplog.text


def test_command_keys_are_kept_private_and_reused(tmp_path):
    first = node_keys(tmp_path)
    again = node_keys(tmp_path)
    assert first.public == again.public and first.local_client == again.local_client
    assert (tmp_path / ".camnode-curve").stat().st_mode & 0o777 == 0o700
    assert ClientKeys.from_dir(tmp_path / ".camnode-curve") == first.local_client
    assert ClientKeys.from_env(first.local_client.to_env()) == first.local_client
    stranger = zmq.curve_keypair()[0]
    assert first.accepts(first.local_client.public) and not first.accepts(stranger)
    extra_public, _ = zmq.curve_keypair()
    (tmp_path / ".camnode-curve" / "clients" / "relay.key").write_text(
        f'curve\n    public-key = "{extra_public.decode()}"\n')
    assert first.accepts(extra_public)  # a relay's own key, added while the node runs


def test_command_keys_without_a_usable_state_dir_are_for_this_run(tmp_path, caplog):
    (tmp_path / ".camnode-curve").write_text("a file where the key folder should be")
    with caplog.at_level(logging.WARNING):
        keys = node_keys(tmp_path)
    assert keys.clients_dir is None and keys.accepts(keys.local_client.public)
    assert "keys for this run only" in caplog.text
