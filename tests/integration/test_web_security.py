"""The web side under attack (issue 9, B.8-B.10 and C.11-C.16), on a real `camnode run`
with real clients: raw sockets, urllib, a Tornado WebSocket client and ZeroMQ clients."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import socket
import time
import urllib.parse

import pytest
import zmq
from tornado import httpclient
from tornado.websocket import websocket_connect
from zmq.utils.monitor import recv_monitor_message

from camnode.node.curve import KEY_DIR, ClientKeys
from tests.integration.conftest import post_command, request, wait_for
from tests.integration.test_web_auth import PASSWORD, Browser

ENV = {"CAMNODE_PASSWORD": PASSWORD, "CAMNODE_API_TOKENS": "tok-1"}
JSON = {"Content-Type": "application/json"}


def _basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def _raw(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection; everything the server answers until it closes."""
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- B.8 -------------------------------------------------------------------------------------
def test_snapshot_is_a_rest_command_like_the_readme_says(run_node):
    node = run_node()
    status, reply = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        post_command(node.url, "snapshot")), what="a snapshot answered")
    assert reply["status"] == "ok" and reply["command"] == "snapshot"
    assert reply["data"]["bytes"] > 0


# -- B.9 -------------------------------------------------------------------------------------
BAD_PATHS = [
    "/static/app.js%00.png", "/static/%00", "/static/app.js%00",
    "/api/events/" + "9" * 5000 + ".jpg", "/api/events/" + "9" * 19 + ".jpg",
    "/api/events/%00.jpg", "/api/state%00", "/api/roi%00/get", "/api/%ff%fe", "/%00",
    "/static/..%2f..%2fconfig.json", "/static/%2e%2e/%2e%2e/config.json",
    "/login?next=%00", "/snapshot.jpg%00", "/" + "a" * 20000,
]


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_malformed_paths_answer_4xx_never_500(run_node, auth):
    node = run_node(env=ENV if auth else None)
    cookie = ""
    if auth:  # reach the handlers behind the login too
        b = Browser(node.url)
        assert b.login() == 302
        cookie = f"Cookie: camnode_session={b.cookie('camnode_session')}\r\n"
    for path in BAD_PATHS:
        for method in ("GET", "POST"):
            answer = _raw(node.url, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    f"{cookie}Content-Length: 0\r\nConnection: close\r\n\r\n"
                          .encode())
            status = _status(answer)
            assert status < 500, (method, path[:60], answer[:200])
            if path.startswith(("/static/", "/api/")):
                assert 400 <= status < 500, (method, path[:60], answer[:200])
    assert "Traceback" not in node.output and "Uncaught exception" not in node.output


BIG = "9" * 5000
BAD_HEADERS = [  # (method, path, headers): numbers and addresses in headers, parsed by us
    ("POST", "/api/roi/get", f"Host: x:{BIG}"),  # Tornado's own int() of the port raised
    ("GET", "/", f"Host: localhost:{BIG}"),
    ("POST", "/api/roi/get", "Host: localhost\r\nOrigin: http://[zz"),
    ("POST", "/api/roi/get", f"Host: localhost\r\nOrigin: http://localhost:{BIG}"),
    ("POST", "/api/roi/get", "Host: [zz"),
    ("POST", "/api/roi/get", f"Host: localhost\r\nX-XSRFToken: 2|zz|{BIG}|zz\r\n"
                             f"Cookie: _xsrf=2|zz|{BIG}|zz"),
    ("GET", "/static/app.js", f"Host: localhost\r\nRange: bytes={BIG}-"),
    ("GET", "/snapshot.jpg", "Host: localhost\r\nAuthorization: Basic %%%%"),
    ("GET", "/api/state", "Host: localhost\r\nAuthorization: Bearer \xff\xfe"),
]


def test_malformed_headers_answer_4xx_never_500(run_node):
    node = run_node(env=ENV)
    for method, path, headers in BAD_HEADERS:
        answer = _raw(node.url, (f"{method} {path} HTTP/1.1\r\n{headers}\r\nContent-Type: "
                                 "application/json\r\nContent-Length: 2\r\n"
                                 "Connection: close\r\n\r\n{}").encode("latin-1"))
        assert answer and _status(answer) < 500, (headers[:60], answer[:200])
    assert "Traceback" not in node.output and "Uncaught exception" not in node.output


# -- B.10 ------------------------------------------------------------------------------------
def _closed_after(url: str, first: bytes, trickle: bytes | None, limit: float) -> float:
    """Send `first`, then (if given) one byte of `trickle` every 0.25 s; the seconds until
    the server closes the connection (fails after `limit`)."""
    u = urllib.parse.urlsplit(url)
    t0 = time.monotonic()
    with socket.create_connection((u.hostname, u.port), timeout=limit) as s:
        s.sendall(first)
        s.settimeout(0.25)
        i = 0
        while time.monotonic() - t0 < limit:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - t0
            if trickle:
                try:
                    s.sendall(trickle[i % len(trickle):][:1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0
                i += 1
    raise AssertionError(f"connection still open after {limit} s")


def test_requests_that_never_finish_are_timed_out(run_node):
    node = run_node({"web": {"header_timeout_s": 1.5, "body_timeout_s": 1.5}})
    # Slowloris: headers that keep coming, one byte at a time, and never end.
    t = _closed_after(node.url, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-a: b\r\n", 10)
    assert 1.2 < t < 4, t
    # A body announced at 1000 bytes, of which 10 arrive, then one more now and then.
    t = _closed_after(node.url, b"POST /api/roi/get HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"id\": 1",
                      b" ", 10)
    assert 1.2 < t < 4, t
    assert request(node.url + "/api/state")[0] == 200  # the worker serves on


# -- C.11 ------------------------------------------------------------------------------------
OPEN_REDIRECTS = ["/\\evil.example/phish", "/\t/evil.example", "//evil.example",
                  "/\\/evil.example", "\\\\evil.example", "https://evil.example/",
                  "javascript:alert(1)", "/\r\nSet-Cookie: a=b", " //x", "/\n/evil.example",
                  "evil.example", "/\u3002/evil", "/%0d%0aX: y\r\n"]
SAME_ORIGIN = ["/", "/?a=1&b=%2F%2Fx", "/static/app.js", "/x#top", "/%5Cevil.example"]


def test_login_redirects_only_to_paths_on_this_site(run_node):
    node = run_node(env=ENV)
    b = Browser(node.url)
    for nxt in OPEN_REDIRECTS + SAME_ORIGIN:
        b.jar.clear()
        status, _, page = b.open("/login?" + urllib.parse.urlencode({"next": nxt}))
        assert status == 200
        form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "next": nxt,
                                       "_xsrf": b.cookie("_xsrf")}).encode()
        status, headers, _ = b.open("/login", form, method="POST")
        expected = nxt if nxt in SAME_ORIGIN else "/"
        assert (status, headers.get("Location")) == (302, expected), repr(nxt)
        if nxt not in SAME_ORIGIN:
            assert b"evil" not in page, repr(nxt)  # nor in the form's hidden field


# -- C.12 ------------------------------------------------------------------------------------
def test_basic_auth_guessing_is_throttled_per_address_and_logged(run_node):
    node = run_node(env=ENV)
    url = node.url + "/snapshot.jpg"

    def guess(_: int) -> int:
        return request(url, headers=_basic("guess"), timeout=15)[0]

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = []
        while time.monotonic() - t0 < 4:
            statuses += pool.map(guess, range(8))
    checked, refused = statuses.count(401), statuses.count(429)
    assert set(statuses) <= {401, 429}
    # Delays of 0.5, 1, 1.5... s after each failure, at most 3 checks waiting at a time:
    # a handful of guesses in 4 s (unthrottled: thousands), the rest refused unchecked.
    assert checked <= 16 and refused > 0, (checked, refused)
    node.wait_line(r"failed HTTP Basic on /snapshot\.jpg from 127\.0\.0\.1 \(\d+ in a row")
    node.wait_line(r"too many credential checks from 127\.0\.0\.1")
    # API tokens are credentials too: a wrong one now waits its turn as well.
    t1 = time.monotonic()
    assert request(node.url + "/api/state", headers={"Authorization": "Bearer x"},
                   timeout=15)[0] in (401, 429)
    # The right password still gets in once this address's delay has passed.
    status = wait_for(lambda: (lambda s: s if s != 429 else None)(
        request(url, headers=_basic(PASSWORD), timeout=15)[0]), timeout=15,
        what="the right password accepted")
    assert status == 200 and time.monotonic() - t1 > 1.0


# -- C.13 ------------------------------------------------------------------------------------
def _as_thief(url: str, session: str, times: int = 8) -> set[int]:
    """/api/state with a copied session cookie, on fresh connections (any worker)."""
    return {request(url + "/api/state", headers={"Cookie": f"camnode_session={session}"})[0]
            for _ in range(times)}


def test_logout_revokes_the_session_on_every_worker(run_node, tmp_path):
    node = run_node({"web": {"workers": 2}}, env=ENV)
    b = Browser(node.url)
    assert b.login() == 302
    stolen = b.cookie("camnode_session")
    assert _as_thief(node.url, stolen) == {200}
    # What the thief already watches is cut too: a stream and a live socket.
    u = urllib.parse.urlsplit(node.url)
    stream = socket.create_connection((u.hostname, u.port), timeout=10)
    stream.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Cookie: camnode_session={stolen}\r\n\r\n".encode())
    assert stream.recv(65536).startswith(b"HTTP/1.1 200")
    live = asyncio.run(_ws_state_then_close_code(node.url, stolen,
                                                 lambda: b.open("/logout", b"", {
                                                     "X-XSRFToken": b.cookie("_xsrf")},
                                                     "POST")))
    assert live == "closed"
    assert _as_thief(node.url, stolen, 16) == {401}
    deadline = time.monotonic() + 5  # frames flow until the worker's next check (1 s)
    while stream.recv(65536):
        assert time.monotonic() < deadline, "the stolen session's stream is still open"
    stream.close()
    assert (tmp_path / ".camnode-sessions.json").stat().st_mode & 0o077 == 0


async def _ws_state_then_close_code(url: str, session: str, logout) -> str:
    conn = await websocket_connect(httpclient.HTTPRequest(
        url.replace("http", "ws") + "/ws", headers={"Cookie": f"camnode_session={session}"}))
    assert json.loads(await conn.read_message())["type"] == "state"
    status = await asyncio.get_running_loop().run_in_executor(None, logout)
    assert status[0] == 302
    deadline = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < deadline:
        msg = await asyncio.wait_for(conn.read_message(), 5)
        if msg is None:
            return "closed"
    conn.close()
    return "still open"


def test_a_new_password_logs_every_session_out(run_node):
    node = run_node(env=ENV)
    b = Browser(node.url)
    assert b.login() == 302
    stolen = b.cookie("camnode_session")
    node.stop()
    node = run_node(env=ENV)  # same password: sessions survive a restart
    assert _as_thief(node.url, stolen, 2) == {200}
    node.stop()
    node = run_node(env={**ENV, "CAMNODE_PASSWORD": "another " + PASSWORD})
    assert _as_thief(node.url, stolen, 2) == {401}
    b = Browser(node.url)
    assert b.login("another " + PASSWORD) == 302 and b.open("/api/state")[0] == 200


# -- C.14 ------------------------------------------------------------------------------------
def test_state_changes_need_a_host_that_names_this_node(run_node):
    node = run_node({"web": {"allowed_hosts": ["camera.example"]}})
    port = urllib.parse.urlsplit(node.url).port
    stop = b"{}"
    status, _, body = request(node.url + "/api/pipeline/stop", "POST", stop,
                              {**JSON, "Host": f"rebind.evil.example:{port}"})
    reply = json.loads(body)
    assert status == 403 and reply["error"]["code"] == "forbidden_host"
    assert "rebind.evil.example" in reply["error"]["message"]
    assert "allowed_hosts" in reply["error"]["message"]
    assert node.state()["pipeline"] == "running"
    # Another site's page, even when Host is right, is refused by its Origin.
    status, _, _ = request(node.url + "/api/pipeline/stop", "POST", stop,
                           {**JSON, "Origin": "http://rebind.evil.example"})
    assert status == 403 and node.state()["pipeline"] == "running"
    status, _, page = request(node.url + "/login", "POST", b"username=a&password=b",
                              {"Host": "rebind.evil.example"})
    assert status == 403 and b"web.allowed_hosts" in page and b"<form" in page
    with pytest.raises(httpclient.HTTPClientError) as refused:
        asyncio.run(_ws_open(node.url, "rebind.evil.example"))
    assert refused.value.code == 403
    # The node's own names and addresses, and configured ones, are accepted.
    own = [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", socket.gethostname(),
           socket.gethostname().split(".")[0] + ".local", "camera.example:8443",
           f"{_lan_ip() or '10.1.2.3'}:{port}"]
    for i, host in enumerate(own):
        command = "pipeline/stop" if i % 2 == 0 else "pipeline/start"
        status, _, body = request(f"{node.url}/api/{command}", "POST", stop,
                                  {**JSON, "Host": host, "Origin": f"http://{host}"})
        assert status == 200, (host, body)
    asyncio.run(_ws_open(node.url, f"localhost:{port}"))


def _lan_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return None


async def _ws_open(url: str, host: str) -> None:
    conn = await websocket_connect(httpclient.HTTPRequest(
        url.replace("http", "ws") + "/ws", headers={"Host": host}))
    try:
        assert json.loads(await conn.read_message())["type"] == "state"
    finally:
        conn.close()


# -- C.15 ------------------------------------------------------------------------------------
def test_only_a_valid_api_token_excuses_the_xsrf_token(run_node):
    node = run_node(env=ENV)
    b = Browser(node.url)
    assert b.login() == 302
    forged = {**JSON, "Authorization": "Bearer not-a-token"}
    assert b.open("/api/pipeline/stop", b"{}", forged, "POST")[0] == 403
    status, _, body = b.open("/api/state")
    assert status == 200 and json.loads(body)["pipeline"] == "running"
    good = {**JSON, "Authorization": "Bearer tok-1"}
    assert request(node.url + "/api/pipeline/stop", "POST", b"{}", good)[0] == 200


def test_with_auth_off_a_bearer_header_does_not_skip_xsrf_either(run_node):
    node = run_node()
    b = Browser(node.url)
    b.open("/")  # holds the _xsrf cookie, like a browser with the page open
    status, _, _ = b.open("/api/pipeline/stop", b"{}",
                          {**JSON, "Authorization": "Bearer anything"}, "POST")
    assert status == 403 and node.state()["pipeline"] == "running"


# -- C.16 ------------------------------------------------------------------------------------
def _handshake(endpoint: str, keys: ClientKeys | None, send: list[tuple[str, dict]]) -> int:
    """Connect a DEALER (CURVE with `keys`, else plain), queue `send`; the handshake event."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    mon = sock.get_monitor_socket()
    try:
        if keys is not None:
            keys.apply(sock)
        sock.connect(endpoint)
        for i, (command, payload) in enumerate(send):
            sock.send_multipart([b"", str(i).encode(),
                                 json.dumps({"command": command, "payload": payload}).encode()])
        done = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if mon.poll(200):
                event = recv_monitor_message(mon)["event"]
                if event & done:
                    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        assert sock.poll(5000), "a keyed client is answered"
                        sock.recv_multipart()
                    return event
        raise AssertionError("no handshake result in 10 s")
    finally:
        sock.disable_monitor()
        mon.close()
        sock.close()
        ctx.term()


def test_command_socket_refuses_clients_without_the_nodes_key(run_node, tmp_path):
    node = run_node(env=ENV)
    endpoint = node.wait_line(r"accepting commands on (tcp://\S+) \(CURVE").group(1)
    attacks = [("pipeline/stop", {}),
               ("viewers/report", {"worker": "x", "viewers": 999, "fps": [1.0]})]
    assert _handshake(endpoint, None, attacks) in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                                                   zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    node_keys = ClientKeys.from_dir(tmp_path / KEY_DIR)
    stranger = ClientKeys(node_keys.server_public, *zmq.curve_keypair())
    assert _handshake(endpoint, stranger, attacks) == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    node.wait_line(r"command socket: refused a client with an unknown key")
    # The same key the workers hold is answered (so the refusals above were the key's doing).
    assert _handshake(endpoint, node_keys, [("state/get", {})]) == zmq.EVENT_HANDSHAKE_SUCCEEDED
    state = json.loads(Browser(node.url).open("/api/state", headers={
        "Authorization": "Bearer tok-1"})[2])
    assert state["pipeline"] == "running" and state["viewers"] < 999
    assert (tmp_path / KEY_DIR).stat().st_mode & 0o077 == 0
