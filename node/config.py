"""Configuration: load, validate against schemas/config.schema.json, store atomically.

The CLI loads the file once at start (`load_config`), so a bad file fails before
anything opens, with every error listed. At run time the command dispatcher is the only
writer (`ConfigStore.update`), from its own thread; each write goes to a temporary file,
is fsynced, then renamed over the old one, and the previous file is kept as `.bak`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from camnode.node import strictjson
from camnode.node.schemas import ValidationIssue, validate

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "name": "camnode",
    "camera": {"width": 640, "height": 480, "fps": 30, "jpeg_quality": 80, "rotate": 0,
               "reconnect_max_s": 10, "mjpg": True},
    "pipeline": {"autostart": True, "module": "passthrough", "module_params": {},
                 "processor_dirs": [], "stamp": True,
                 "encode": "demand", "max_variants": 4, "examples": False},
    "zmq": {"publish": "tcp://127.0.0.1:5555", "command": "tcp://127.0.0.1:5556"},
    "web": {"host": "0.0.0.0", "port": 8080, "workers": 1, "max_clients": 2000,
            "allowed_hosts": [], "header_timeout_s": 20, "body_timeout_s": 30},
    "colours": {},
    "rois": {},
    "rois_version": 0,
    "logging": {"level": "INFO"},
    "mqtt": {"enabled": True, "host": "auto", "port": 1883, "username": None,
             "protocol": "5", "keepalive": 30, "base_topic": "camnode", "tls": {},
             "discovery": {}, "stats_interval_s": 30, "public_url": None},
    "events": {"update_interval_s": 1.0, "end_after_s": 1.5, "occupancy_off_delay_s": 3.0,
               "min_score": 0.0, "snapshot_height": 360, "snapshot_max_bytes": 250000},
}


MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A configuration that cannot be used; `issues` lists every problem found."""

    def __init__(self, source: str, issues: list[ValidationIssue]):
        self.source = source
        self.issues = issues
        lines = [f"{source}: {len(issues)} error(s)"]
        lines += [f"  {i.path}: {i.reason}" for i in issues]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class CameraConfig:
    source: str | int
    width: int
    height: int
    fps: float
    jpeg_quality: int
    rotate: int
    reconnect_max_s: float
    mjpg: bool = True  # ask V4L2 cameras for MJPG (HD rates over USB 2)


@dataclass(frozen=True)
class PipelineConfig:
    autostart: bool
    module: str
    module_params: dict
    processor_dirs: tuple[str, ...]
    stamp: bool
    encode: str = "demand"  # "demand": JPEG only when someone needs a picture; "always"
    max_variants: int = 4  # scaled/slowed streams encoded at once (?width=&fps=)
    examples: bool = False  # list the example_* modules (page, Home Assistant select)


@dataclass(frozen=True)
class ZmqConfig:
    publish: str
    command: str


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int
    workers: int
    max_clients: int
    allowed_hosts: tuple[str, ...] = ()
    header_timeout_s: float = 20.0
    body_timeout_s: float = 30.0


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool
    host: str  # "auto": a private Mosquitto when available
    port: int
    username: str | None
    protocol: str
    keepalive: int
    base_topic: str
    tls: TlsConfig
    discovery: bool
    discovery_prefix: str
    stats_interval_s: float
    public_url: str | None


@dataclass(frozen=True)
class EventsConfig:
    update_interval_s: float
    end_after_s: float
    occupancy_off_delay_s: float
    min_score: float
    snapshot_height: int
    snapshot_max_bytes: int
    confirm_frames: int = 3
    stationary_after_s: float = 10.0
    stationary_end_after_s: float = 60.0


@dataclass(frozen=True)
class Config:
    """Validated configuration; `raw` is the document as it is stored on disk."""

    node_id: str
    name: str
    camera: CameraConfig
    pipeline: PipelineConfig
    zmq: ZmqConfig
    web: WebConfig
    colours: dict[str, tuple[int, int, int]]
    rois: dict[str, dict]
    rois_version: int
    mqtt: MqttConfig
    events: EventsConfig
    log_level: str
    raw: dict = field(repr=False, compare=False)
    base_dir: Path = field(default=Path("."), compare=False)

    def processor_dirs(self) -> list[Path]:
        """Extra module directories, relative paths taken from the config file's folder."""
        return [(self.base_dir / d).resolve() for d in self.pipeline.processor_dirs]


def _merged(doc: dict) -> dict:
    out = copy.deepcopy(DEFAULTS)
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _semantic_issues(doc: dict) -> list[ValidationIssue]:
    """Checks JSON Schema cannot express: ROI corners in order, colours that exist."""
    issues = []
    colours = doc.get("colours") if isinstance(doc.get("colours"), dict) else {}
    rois = doc.get("rois") if isinstance(doc.get("rois"), dict) else {}
    for name, roi in rois.items():
        if not isinstance(roi, dict):
            continue
        issues += roi_issues(roi, colours, f"$.rois.{name}")
    return issues


def roi_issues(roi: dict, colours: dict, path: str) -> list[ValidationIssue]:
    """Corner order and colour-name checks for one ROI (shared with the dispatcher)."""
    from camnode.processors.common import DEFAULT_COLOURS

    issues = []
    try:
        if roi["left"] >= roi["right"]:  # a TypeError here was reported by the schema
            issues.append(ValidationIssue(f"{path}.right", "right must be greater than left"))
        if roi["top"] >= roi["bottom"]:
            issues.append(ValidationIssue(f"{path}.bottom", "bottom must be greater than top"))
    except (KeyError, TypeError):
        pass
    colour = roi.get("colour")
    if isinstance(colour, str) and colour not in colours and colour not in DEFAULT_COLOURS:
        issues.append(ValidationIssue(f"{path}.colour", f"unknown colour {colour!r}"))
    return issues


def parse_config(doc: Any, source: str = "config", base_dir: Path = Path(".")) -> Config:
    """Validate a configuration document and build the typed `Config`; raise ConfigError."""
    issues = validate("config", doc)
    if isinstance(doc, dict):
        issues += _semantic_issues(doc)
    if issues:
        raise ConfigError(source, issues)
    m = _merged(doc)
    cam, pipe, mq = m["camera"], m["pipeline"], m["mqtt"]
    return Config(
        node_id=m["node_id"],
        name=m["name"],
        camera=CameraConfig(cam["source"], cam["width"], cam["height"], float(cam["fps"]),
                            cam["jpeg_quality"], cam["rotate"], float(cam["reconnect_max_s"]),
                            cam["mjpg"]),
        pipeline=PipelineConfig(pipe["autostart"], pipe["module"], dict(pipe["module_params"]),
                                tuple(pipe["processor_dirs"]), pipe["stamp"],
                                pipe["encode"], pipe["max_variants"], pipe["examples"]),
        zmq=ZmqConfig(m["zmq"]["publish"], m["zmq"]["command"]),
        web=WebConfig(m["web"]["host"], m["web"]["port"], m["web"]["workers"],
                      m["web"]["max_clients"], tuple(m["web"]["allowed_hosts"]),
                      float(m["web"]["header_timeout_s"]), float(m["web"]["body_timeout_s"])),
        colours={k: tuple(v) for k, v in m["colours"].items()},
        rois=copy.deepcopy(m["rois"]),
        rois_version=m["rois_version"],
        mqtt=MqttConfig(
            enabled=mq["enabled"], host=mq["host"], port=mq["port"], username=mq["username"],
            protocol=mq["protocol"], keepalive=mq["keepalive"], base_topic=mq["base_topic"],
            tls=TlsConfig(**mq["tls"]), discovery=mq["discovery"].get("enabled", True),
            discovery_prefix=mq["discovery"].get("prefix", "homeassistant"),
            stats_interval_s=float(mq["stats_interval_s"]), public_url=mq["public_url"]),
        events=EventsConfig(**m["events"]),
        log_level=m["logging"]["level"],
        raw=copy.deepcopy(doc),
        base_dir=base_dir,
    )


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a config file; every problem is reported in one ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [ValidationIssue("$", f"cannot read file: {exc.strerror}")])
    try:
        doc = strictjson.loads(text, max_bytes=MAX_CONFIG_BYTES)
    except strictjson.JsonRefused as exc:  # NaN/Infinity listed by path, limits, syntax
        raise ConfigError(str(path), exc.issues)
    return parse_config(doc, str(path), path.resolve().parent)


def stale_temp_files(path: Path) -> list[Path]:
    """Temporary files `atomic_write_json` leaves beside `path` when killed mid-write
    (`.config.json.<random>.tmp`, `.config.json.bak.tmp`)."""
    path = Path(path)
    try:
        return sorted(p for p in path.parent.glob(f".{path.name}.*.tmp") if p.is_file())
    except OSError:
        return []


def atomic_write_json(path: Path, doc: dict, keep_backup: bool = True) -> None:
    """Write `doc` so that a crash leaves either the old or the new file, never half of one.

    The old file is kept as `<name>.bak` (a hard link, so it is never missing either).
    """
    path = Path(path)
    # allow_nan=False: a NaN that got this far is a bug; never write what JSON forbids.
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    data = (text + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            try:
                os.chmod(tmp, path.stat().st_mode & 0o777)
            except OSError:
                pass
            if keep_backup:
                bak = path.with_name(path.name + ".bak")
                bak_tmp = path.with_name(f".{path.name}.bak.tmp")
                if bak_tmp.exists():
                    bak_tmp.unlink()
                os.link(path, bak_tmp)
                os.replace(bak_tmp, bak)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, path.with_name(f".{path.name}.bak.tmp")):
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ConfigStore:
    """The node's single source of configuration truth, shared by its threads.

    `update(fn)` applies `fn` to a copy of the raw document, validates the result and
    writes it atomically; on any failure nothing changes, in memory or on disk. With
    `path=None` changes stay in memory. `overrides` re-applies command-line flags
    (`--source`, `--port`...) to every new version, so they are never written to the file.
    """

    def __init__(self, config: Config, path: Path | None,
                 overrides: Callable[[Config], Config] | None = None):
        self._overrides = overrides or (lambda c: c)
        self._config = self._overrides(config)
        self._path = Path(path) if path else None
        self._lock = threading.Lock()

    def remove_stale_temp_files(self) -> int:
        """Delete what a kill -9 during a write left behind; call once at start, before
        anything writes (main thread). Returns how many files were removed."""
        if self._path is None:
            return 0
        removed = 0
        for tmp in stale_temp_files(self._path):
            try:
                tmp.unlink()
                removed += 1
            except OSError as exc:
                log.warning("cannot remove stale temporary file %s: %s", tmp, exc)
        if removed:
            log.info("removed %d stale temporary file(s) beside %s (left by a killed "
                     "process)", removed, self._path)
        return removed

    @property
    def config(self) -> Config:
        return self._config

    def update(self, change: Callable[[dict], None]) -> Config:
        """Apply `change` to a copy of the document; validate; persist; return the result.

        Raises ConfigError (nothing changed) when the result is invalid.
        """
        with self._lock:
            doc = copy.deepcopy(self._config.raw)
            change(doc)
            new = self._overrides(
                parse_config(doc, str(self._path or "config"), self._config.base_dir))
            if self._path is not None:
                atomic_write_json(self._path, doc)
                log.info("configuration saved to %s", self._path)
            self._config = new
            return new
