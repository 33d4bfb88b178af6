"""The wheel works outside the repository, as `pipx install`, a wheel or a distribution
package would run it: built from this checkout, installed into a clean virtualenv in a
temporary folder, started from another folder. It serves the page, the stream and MQTT,
and `check-config` and `install-service` work, all from the installed package data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import (BASE_CONFIG, ROOT, Camnode, MjpegReader,
                                        deep_update, get_json, request)

pytestmark = pytest.mark.timeout(600)


def _run(cmd: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A clean virtualenv holding only the wheel (and its dependencies); its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "models",
        ".cache", ".camnode-*", "config.json.bak"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(tmp / "dist"), str(src)], cwd=tmp)
    wheels = list((tmp / "dist").glob("camnode-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", str(tmp / "venv")], cwd=tmp)
    python = tmp / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheels[0])], cwd=tmp)
    return python


def test_wheel_holds_one_uniquely_named_package_with_its_data(installed):
    code = ("import importlib.util as u, json, camnode, pathlib; "
            "root = pathlib.Path(camnode.__file__).parent; "
            "print(json.dumps({'taken': [n for n in ('node', 'web', 'processors', 'schemas') "
            "if u.find_spec(n)], 'root': str(root), "
            "'data': sorted(str(p.relative_to(root)) for p in root.rglob('*') "
            "if p.suffix in ('.json', '.js', '.html', '.css', '.service'))}))")
    info = json.loads(_run([str(installed), "-c", code], cwd=installed.parent).stdout)
    assert info["taken"] == [], f"installed import names collide: {info['taken']}"
    assert str(ROOT) not in info["root"], "camnode was imported from the repository"
    data = info["data"]
    for needed in ("schemas/config.schema.json", "schemas/commands/roi.add.schema.json",
                   "web/static/index.html", "web/static/app.js",
                   "deploy/systemd/camnode.service"):
        assert needed in data, f"{needed} missing from the wheel: {data}"


def test_installed_camnode_runs_outside_the_repository(installed, tmp_path, broker,
                                                     probe_factory):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    cfg = workdir / "config.json"
    cfg.write_text(json.dumps(deep_update(BASE_CONFIG, {
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port}})))
    bindir = installed.parent

    check = _run([str(bindir / "camnode"), "check-config", str(cfg)], cwd=workdir)
    assert "OK" in check.stdout
    units = _run([str(bindir / "camnode"), "install-service", "--output",
                  str(workdir / "units"), "--user", "camnode", "--config", str(cfg)],
                 cwd=workdir)
    service = (workdir / "units" / "camnode.service").read_text()
    assert str(bindir / "camnode") in service and "wrote" in units.stdout

    probe = probe_factory(broker.port, client_id="wheel-probe")
    node = Camnode(["run", "--config", str(cfg)], workdir, python=str(installed)).start()
    try:
        node.wait_ready()
        status, _, page = request(node.url + "/")
        assert status == 200 and b"<html" in page.lower()
        status, _, js = request(node.url + "/static/app.js")
        assert status == 200 and js
        reader = MjpegReader(node.url + "/stream.mjpg")
        try:
            part, jpeg, _ = reader.read_part()
            assert jpeg[:2] == b"\xff\xd8" and "x-timestamp" in part
        finally:
            reader.close()
        probe.wait("camnode/test/availability", lambda m: m.payload == b"online",
                   timeout=15)
        state = get_json(node.url + "/api/state")
        assert state["mqtt"]["connected"] is True
        assert "Traceback" not in node.output
    finally:
        node.kill_all()
