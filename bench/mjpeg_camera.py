"""A network camera stand-in: an HTTP MJPEG server sending given JPEGs in turn at a fixed
rate, paced on the clock (no drift). Used by bench/budget.py (camera passthrough costs)
and by the tests (tests/integration/conftest.py), which also switch it off and on again
on the same port."""

from __future__ import annotations

import http.server
import threading
import time


class MjpegCamera:
    """Serves `jpegs` on any path as multipart/x-mixed-replace at `fps`; start() and
    stop() from the caller's thread, each viewer on a server thread."""

    def __init__(self, jpegs: list[bytes], fps: float = 10.0):
        self.jpegs, self.fps = jpegs, fps
        self.port = 0  # chosen by the first start, kept by the next ones
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> str:
        """Serve; returns a stream URL."""
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=cam")
                self.end_headers()
                i, next_at = 0, time.monotonic()
                try:
                    while camera.server is not None:
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        self.wfile.write(b"--cam\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg
                                         + b"\r\n")
                        i += 1
                        next_at += 1 / camera.fps
                        time.sleep(max(0.0, next_at - time.monotonic()))
                except OSError:
                    pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def stop(self) -> None:
        server, self.server = self.server, None
        if server:
            server.shutdown()
            server.server_close()
