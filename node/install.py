"""`camnode install-service`: write the systemd units with this installation's paths.

Called by the CLI; writes files only (to /etc/systemd/system, or `--output`), then
prints the remaining steps for the administrator to run.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

UNIT_DIR = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
UNITS = ("camnode.service", "camnode-web@.service")


def camnode_executable() -> str:
    """The `camnode` script of this installation (its venv), as an absolute path."""
    here = Path(sys.executable).parent / "camnode"
    if here.exists():
        return str(here)
    found = shutil.which("camnode")
    if found:
        return str(Path(found).resolve())
    raise FileNotFoundError("cannot find the camnode executable; install with pip first")


def render_units(camnode: str, user: str) -> dict[str, str]:
    return {name: (UNIT_DIR / name).read_text(encoding="utf-8")
            .replace("@CAMNODE@", camnode).replace("@USER@", user) for name in UNITS}


def install(output: Path, user: str, config: Path | None) -> list[Path]:
    """Write the units into `output`; returns the files written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(camnode_executable(), user).items():
        path = output / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def next_steps(user: str, config: Path) -> str:
    return f"""Now, as root:
  useradd --system --home-dir /var/lib/camnode --shell /usr/sbin/nologin --groups video {user}
  install -d -o {user} -g {user} -m 750 /var/lib/camnode
  install -o {user} -g {user} -m 640 {config} /var/lib/camnode/config.json
  install -d -m 750 /etc/camnode   # secrets: /etc/camnode/camnode.env (chmod 600), e.g.
                                   #   CAMNODE_PASSWORD=...   CAMNODE_MQTT_PASSWORD=...
  systemctl daemon-reload
  systemctl enable --now camnode
  journalctl -u camnode -f"""
