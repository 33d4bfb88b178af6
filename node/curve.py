"""ZeroMQ CURVE keys for the command socket, so only the node's own web workers and the
relays given a key can send commands.

Without it any local process (or, with `zmq.command` on a LAN address, any host) could
send `pipeline/stop` or the internal `viewers/report` to the command port and bypass the
web login. With it the command socket is a CURVE server: traffic is encrypted and every
client must present a public key the node accepts, checked by a ZAP handler
(pyzmq's `ThreadAuthenticator`) before a single message is read.

Keys live in `<state dir>/.camnode-curve/` (mode 700, the state dir being the config
file's folder), created at first start:

    server.key, server.key_secret   the command socket's key pair
    client.key, client.key_secret   the key pair of local workers and relays
    clients/*.key                   more accepted client public keys (a relay's own)

A relay on another host (`camnode web --connect tcp://node:5555 --keys DIR`) needs a DIR
holding a copy of `server.key` and a client key pair: a copy of `client.key_secret`, or
a pair of its own (`zmq.auth.create_certificates(DIR, "client")`) whose public half
`client.key` is copied into the node's `clients/`. The web workers of `camnode run` get
the keys in their environment. When the state dir cannot be written, keys are made for
this run only.

`inproc://` endpoints (tests) are not secured: ZeroMQ applies no mechanism in-process.
The frame PUB socket is not secured either: it is read-only (see the README, "What the
two ZeroMQ ports expose").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from camnode.node.wire import ClientKeys  # noqa: F401 (the client side is part of the wire format)

log = logging.getLogger(__name__)

KEY_DIR = ".camnode-curve"
@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    local_client: ClientKeys
    clients_dir: Path | None = None  # more accepted client public keys, read at each connect

    def accepts(self, client_public: bytes) -> bool:
        if client_public == self.local_client.public:
            return True
        if self.clients_dir is None or not self.clients_dir.is_dir():
            return False
        for cert in self.clients_dir.glob("*.key"):
            try:
                if zmq.auth.load_certificate(cert)[0] == client_public:
                    return True
            except (OSError, ValueError):
                log.warning("ignoring unreadable client key %s", cert)
        return False


def _pair(directory: Path, name: str) -> tuple[bytes, bytes]:
    secret_file = directory / f"{name}.key_secret"
    if not secret_file.exists():
        zmq.auth.create_certificates(directory, name)
        os.chmod(secret_file, 0o600)
    public, secret = zmq.auth.load_certificate(secret_file)
    if not secret:
        raise ValueError(f"{secret_file} holds no secret key")
    return public, secret


def node_keys(state_dir: Path | None) -> ServerKeys:
    """The node's keys from `<state_dir>/.camnode-curve/`, created when missing; keys for
    this run only when that folder cannot be used. Called once at start (main thread)."""
    if state_dir is not None:
        directory = Path(state_dir) / KEY_DIR
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            (directory / "clients").mkdir(mode=0o700, exist_ok=True)
            server = _pair(directory, "server")
            client = _pair(directory, "client")
            return ServerKeys(*server, ClientKeys(server[0], *client), directory / "clients")
        except (OSError, ValueError) as exc:
            log.warning("cannot keep command-socket keys in %s (%s): keys for this run only "
                        "(relays on other hosts cannot connect)", directory, exc)
    server = zmq.curve_keypair()
    client = zmq.curve_keypair()
    return ServerKeys(*server, ClientKeys(server[0], *client))


class _Provider:
    """The ZAP callback: accept known client keys, log the others (once each)."""

    def __init__(self, keys: ServerKeys):
        self.keys = keys
        self.refused: set[bytes] = set()

    def callback(self, domain: str, client_public: bytes) -> bool:
        if self.keys.accepts(client_public):
            return True
        if client_public not in self.refused:
            self.refused.add(client_public)
            log.warning("command socket: refused a client with an unknown key %s",
                        client_public.decode(errors="replace"))
        return False


class CurveGuard:
    """Secures one server socket: CURVE options plus a ZAP handler on its context.

    `secure(sock)` before bind (the caller's thread); `stop()` ends the ZAP thread. One
    guard per ZeroMQ context at a time (ZAP's endpoint is per context).
    """

    def __init__(self, keys: ServerKeys):
        self.keys = keys
        self._auth: ThreadAuthenticator | None = None

    def secure(self, ctx: zmq.Context, sock: zmq.Socket) -> None:
        if self._auth is None:
            self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("zmq.auth"))
            self._auth.start()
            self._auth.configure_curve_callback("*", _Provider(self.keys))
        sock.curve_secretkey = self.keys.secret
        sock.curve_publickey = self.keys.public
        sock.curve_server = True

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
