"""Web authentication and the live WebSocket, with real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import http.cookiejar
import json
import urllib.parse
import urllib.request

from tornado.websocket import websocket_connect

from tests.integration.conftest import MjpegReader, post_command, request, wait_for

PASSWORD = "correct horse"
ENV = {"CAMNODE_PASSWORD": PASSWORD, "CAMNODE_API_TOKENS": "tok-1, tok-2"}


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Browser:
    """Cookies kept between requests, redirects not followed (to see them)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  NoRedirect)

    def open(self, path: str, data: bytes | None = None, headers: dict | None = None,
             method: str | None = None):
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {},
                                     method=method)
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def login(self, password: str = PASSWORD) -> int:
        self.open("/login")
        form = urllib.parse.urlencode({"username": "admin", "password": password,
                                       "next": "/", "_xsrf": self.cookie("_xsrf")}).encode()
        return self.open("/login", form, method="POST")[0]


def test_with_auth_on_only_login_and_health_are_open(run_node):
    node = run_node(env=ENV)
    b = Browser(node.url)
    status, headers, _ = b.open("/")
    assert status == 302 and headers["Location"].startswith("/login?next=")
    assert b.open("/login")[0] == 200
    assert b.open("/healthz")[0] == 200
    for path in ("/api/state", "/api/modules", "/api/events", "/snapshot.jpg",
                 "/static/app.js", "/ws"):
        assert b.open(path)[0] == 401, path
    reader = MjpegReader(node.url + "/stream.mjpg")
    assert reader.status == 401 and "basic" in reader.headers["www-authenticate"].lower()
    reader.close()
    status, _, _ = b.open("/api/pipeline/stop", b"{}", {"Content-Type": "application/json"},
                          "POST")
    assert status in (401, 403)
    assert b.open("/snapshot.jpg", headers=_basic("admin", "wrong"))[0] == 401


def test_home_assistant_can_use_basic_auth_on_stream_and_snapshot(run_node):
    node = run_node(env=ENV)
    status, headers, body = request(node.url + "/snapshot.jpg", headers=_basic("admin", PASSWORD))
    assert status == 200 and body[:2] == b"\xff\xd8"
    b = Browser(node.url)
    assert b.open("/api/state", headers=_basic("admin", PASSWORD))[0] == 401  # not for the API


def test_login_sets_a_session_and_posts_need_the_xsrf_token(run_node):
    node = run_node(env=ENV)
    b = Browser(node.url)
    assert b.login("wrong") == 401
    assert b.login() == 302 and b.cookie("camnode_session")
    status, _, body = b.open("/api/state")
    assert status == 200 and json.loads(body)["auth"] == {"enabled": True, "user": "admin"}
    assert b.open("/static/app.js")[0] == 200
    json_hdr = {"Content-Type": "application/json"}
    assert b.open("/api/pipeline/stop", b"{}", json_hdr, "POST")[0] == 403  # no XSRF token
    status, _, body = b.open("/api/pipeline/stop", b"{}",
                             {**json_hdr, "X-XSRFToken": b.cookie("_xsrf")}, "POST")
    assert status == 200 and json.loads(body)["data"]["pipeline"] == "stopped"
    assert b.open("/logout", b"", {"X-XSRFToken": b.cookie("_xsrf")}, "POST")[0] == 302
    assert b.open("/api/state")[0] == 401


def test_api_tokens_work_for_scripts_without_xsrf(run_node):
    node = run_node(env=ENV)
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer tok-2"}
    status, _, body = request(node.url + "/api/pipeline/stop", "POST", b"{}", hdr)
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, _ = request(node.url + "/api/pipeline/start", "POST", b"{}",
                           {**hdr, "Authorization": "Bearer nope"})
    assert status == 401


def test_cross_site_form_post_cannot_change_state_with_auth_off(run_node):
    node = run_node()
    b = Browser(node.url)
    b.open("/")  # a browser that has the page open holds the _xsrf cookie
    status, _, _ = b.open("/api/pipeline/stop", b"{}", {"Content-Type": "application/json"},
                          "POST")
    assert status == 403  # cookie present, token missing: a forged request
    status, _, _ = b.open("/api/pipeline/stop", b"{}", {"Content-Type": "application/json",
                                                        "X-XSRFToken": b.cookie("_xsrf")},
                          "POST")
    assert status == 200


async def _ws_messages(url: str, until, timeout: float = 10.0, cookie: str | None = None,
                       on_open=None) -> list[dict]:
    req = url.replace("http://", "ws://") + "/ws"
    conn = await websocket_connect(req)
    seen = []
    try:
        if on_open:
            await asyncio.get_running_loop().run_in_executor(None, on_open)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            msg = await asyncio.wait_for(conn.read_message(), left)
            if msg is None:
                raise AssertionError("WebSocket closed")
            seen.append(json.loads(msg))
            if until(seen):
                return seen
    finally:
        conn.close()


def test_websocket_pushes_state_and_roi_changes(run_node):
    node = run_node()
    add = {"name": "gate", "left": 1, "top": 1, "right": 20, "bottom": 20, "colour": "red"}
    seen = asyncio.run(_ws_messages(
        node.url, lambda s: any(m["type"] == "rois" and "gate" in m["data"]["rois"] for m in s),
        on_open=lambda: post_command(node.url, "roi/add", add)))
    states = [m for m in seen if m["type"] == "state"]
    assert states and states[0]["data"]["pipeline"] == "running"
    assert "colours" in states[0]["data"] and "worker" in states[0]["data"]


def test_modules_api_lists_parameter_schemas(run_node):
    node = run_node()
    status, _, body = request(node.url + "/api/modules")
    mods = {m["name"]: m["params_schema"] for m in json.loads(body)}
    assert status == 200 and mods["passthrough"] is None
    assert mods["motion"]["properties"]["sensitivity"]["maximum"] == 100
