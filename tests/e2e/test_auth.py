"""With a password set, the page needs a login; the stream takes HTTP Basic for Home Assistant."""

from __future__ import annotations

import base64
import http.client
import re
from urllib.parse import urlparse

from playwright.sync_api import expect

from tests.e2e.conftest import wait_js
from tests.integration.conftest import request

expect.set_options(timeout=10_000)
PASSWORD = "e2e horse battery"
ENV = {"CAMNODE_PASSWORD": PASSWORD}


def _stream_status(url: str, headers: dict) -> tuple[int, str]:
    """Status and content type of /stream.mjpg, reading no more than the headers."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", "/stream.mjpg", headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", "")
    finally:
        conn.close()


def test_login_required_and_basic_auth_on_the_stream(run_node, page):
    node = run_node(env=ENV)
    # The stream refuses anonymous clients but accepts Basic (Home Assistant's MJPEG camera).
    assert _stream_status(node.url, {})[0] == 401
    bad = base64.b64encode(b"admin:wrong").decode()
    assert _stream_status(node.url, {"Authorization": f"Basic {bad}"})[0] == 401
    good = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    status, ctype = _stream_status(node.url, {"Authorization": f"Basic {good}"})
    assert status == 200 and ctype.startswith("multipart/x-mixed-replace")
    assert request(node.url + "/snapshot.jpg")[0] == 401
    assert request(node.url + "/api/state")[0] == 401

    # The page sends a browser to the login form, which says when the password is wrong.
    page.goto(node.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(node.url + "/")
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    expect(page.locator("#user")).to_have_text("admin")
    wait_js(page, "document.getElementById('stream').naturalWidth > 0")
    # Commands work from the logged-in page (session cookie + XSRF header).
    page.click("#stop")
    expect(page.locator("#s-pipeline")).to_have_text("stopped")
    page.click("#start")
    expect(page.locator("#s-pipeline")).to_have_text("running")

    # Log out: back to the login page, and the page is closed again.
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(node.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_logout_button_hidden_without_auth(run_node, page):
    node = run_node()
    page.goto(node.url + "/")
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    expect(page.locator("#logout")).to_be_hidden()
    # /login has nothing to do when auth is off: it goes to the page.
    page.goto(node.url + "/login")
    expect(page).to_have_url(node.url + "/")


def test_after_login_the_browser_stays_on_this_site(run_node, page):
    """`next` pointing elsewhere (Chromium reads `/\\host` and `/<tab>/host` as another
    host) lands on the page instead."""
    node = run_node(env=ENV)
    for nxt in ("/%5Cevil.example/phish", "/%09/evil.example", "//evil.example"):
        page.goto(f"{node.url}/login?next={nxt}")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(node.url + "/")
