"""A naive MJPEG relay, written the way tutorials write it, to compare camnode against.

    python -m bench.baseline --connect tcp://127.0.0.1:5555 --port 0

`http.server.ThreadingHTTPServer`: one thread per HTTP client; every stream client's
thread opens its own ZeroMQ SUB socket to the node's PUB address and, for every frame it
receives, writes the multipart part (same format as camnode, with X-Timestamp and
X-Frame-Seq) with blocking writes. No conflation, no frame skipping: a client that reads
slowly makes its thread, and its SUB queue, fall behind.

The one deviation from the tutorial code is the listen backlog (`--backlog`, default
128 instead of socketserver's 5), so that hundreds of simultaneous connects measure the
fan-out rather than SYN retransmission timers. Serves only /stream.mjpg, /api/state
and /snapshot.jpg.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zmq

BOUNDARY = b"frame"


class Handler(BaseHTTPRequestHandler):
    server: "BaselineServer"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet, like a production setting
        pass

    def do_GET(self):
        if self.path.startswith("/stream.mjpg"):
            self.stream()
        elif self.path.startswith("/api/state"):
            body = json.dumps({"viewers": self.server.viewers,
                               "threads": threading.active_count()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/snapshot.jpg"):
            sub = self.server.ctx.socket(zmq.SUB)
            sub.connect(self.server.connect)
            sub.setsockopt(zmq.SUBSCRIBE, b"frame")
            try:
                _, header, jpeg = sub.recv_multipart()
            finally:
                sub.close(linger=0)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)
        else:
            self.send_error(404)

    def stream(self):
        sub = self.server.ctx.socket(zmq.SUB)
        sub.connect(self.server.connect)
        sub.setsockopt(zmq.SUBSCRIBE, b"frame")
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with self.server.lock:
            self.server.viewers += 1
        try:
            self.wfile.write(b"--" + BOUNDARY + b"\r\n")
            while not self.server.stopping:
                _, header, jpeg = sub.recv_multipart()
                h = json.loads(header)
                self.wfile.write(b"Content-Type: image/jpeg\r\n")
                self.wfile.write(b"Content-Length: %d\r\n" % len(jpeg))
                self.wfile.write(b"X-Timestamp: %.6f\r\n" % h["ts"])
                self.wfile.write(b"X-Frame-Seq: %d\r\n\r\n" % h["seq"])
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n--" + BOUNDARY + b"\r\n")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # client went away
        finally:
            sub.close(linger=0)
            with self.server.lock:
                self.server.viewers -= 1


class BaselineServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, connect: str, backlog: int):
        self.request_queue_size = backlog
        self.connect = connect
        self.ctx = zmq.Context.instance()
        self.viewers = 0
        self.lock = threading.Lock()
        self.stopping = False
        super().__init__(addr, Handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    p.add_argument("--connect", required=True, help="the node's PUB address, tcp://HOST:PORT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0: any free port")
    p.add_argument("--backlog", type=int, default=128)
    a = p.parse_args(argv)
    server = BaselineServer((a.host, a.port), a.connect, a.backlog)
    host, port = server.server_address[:2]

    def stop(*_):
        server.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"baseline is running: open http://{host}:{port}/ (frames from {a.connect})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)  # daemon threads may sit in zmq recv; do not wait for context teardown
