"""The systemd units as `camnode install-service` writes them, checked by systemd itself."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def units(tmp_path: Path) -> Path:
    out = tmp_path / "units"
    proc = subprocess.run([sys.executable, "-m", "camnode", "install-service", "--output",
                           str(out), "--user", "camnode"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "systemctl enable --now camnode" in proc.stdout
    return out


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read(path)
    return cp


@pytest.mark.parametrize("name", ["camnode.service", "camnode-web@.service"])
def test_systemd_analyze_verify_accepts_the_units(units, name):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze missing: `make test` installs the systemd package")
    unit = units / name
    if name.endswith("@.service"):  # verify needs an instance of a template
        unit = units / name.replace("@", "@relay1")
        unit.write_text((units / name).read_text())
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if name.split("@")[0] in line or "Unknown" in line or "rror" in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


def test_units_run_unprivileged_with_only_the_state_directory_writable(units):
    svc = _unit(units / "camnode.service")["Service"]
    camnode = str(Path(sys.executable).parent / "camnode")
    assert svc["ExecStart"].startswith(camnode + " run --config /var/lib/camnode/")
    assert svc["User"] == "camnode" and svc["SupplementaryGroups"] == "video"
    assert svc["ProtectSystem"] == "strict" and svc["StateDirectory"] == "camnode"
    assert "ReadWritePaths" not in svc and svc["NoNewPrivileges"] == "yes"
    assert svc["Restart"] == "on-failure" and svc["KillSignal"] == "SIGTERM"
    assert svc["EnvironmentFile"].startswith("-/etc/camnode/")
    web = _unit(units / "camnode-web@.service")["Service"]
    assert web["User"] == "camnode" and web["ProtectSystem"] == "strict"
    assert "--connect ${CAMNODE_CONNECT}" in web["ExecStart"]
