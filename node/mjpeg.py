"""Compressed frames: JPEG bytes as a camera gave them, and an MJPEG-over-HTTP reader.

A source that already delivers JPEG (an MJPEG HTTP stream, a V4L2 camera in MJPG mode)
hands the capture thread a `Jpeg` instead of a BGR array. The bytes are decoded only
when something needs pixels (node/encoder.py decides), so a node that only relays a
camera's stream does no JPEG work at all. Used by the capture thread only.
"""

from __future__ import annotations

import base64
import http.client
import logging
import re
import urllib.parse
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_PART = 16 * 1024 * 1024  # a JPEG larger than this is not a camera frame
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Jpeg:
    """One compressed frame: the camera's bytes and the size its header declares."""

    data: bytes
    width: int
    height: int


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, without decoding; None if not a JPEG."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > n:
                return None
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return (w, h) if w and h else None
        if marker == 0xDA or length < 2:  # start of scan before any SOF: give up
            return None
        i += 2 + length
    return None


def as_jpeg(data: bytes) -> Jpeg | None:
    size = jpeg_size(data)
    return Jpeg(bytes(data), *size) if size else None


class MjpegHttpError(Exception):
    """The URL did not answer with an MJPEG stream (or it ended)."""


class MjpegHttpReader:
    """Reads `multipart/x-mixed-replace` JPEG parts from an http(s) URL (ustreamer,
    mjpg-streamer, another camnode, most IP cameras). `open` raises MjpegHttpError
    when the answer is not MJPEG, so the caller can fall back to FFmpeg."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._boundary = b""

    def open(self) -> None:
        u = urllib.parse.urlsplit(self.url)
        cls = http.client.HTTPSConnection if u.scheme.lower() == "https" else \
            http.client.HTTPConnection
        conn = cls(u.hostname or "localhost", u.port, timeout=self.timeout_s)
        headers = {"Accept": "multipart/x-mixed-replace, image/jpeg"}
        if u.username is not None:
            cred = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise MjpegHttpError(f"HTTP request failed: {exc}") from exc
        ctype = resp.getheader("Content-Type", "")
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if resp.status != 200 or not ctype.lower().startswith("multipart/") or not m:
            conn.close()
            raise MjpegHttpError(f"not an MJPEG stream (HTTP {resp.status}, {ctype or 'no type'})")
        b = m.group(1).encode()
        self._boundary = b if b.startswith(b"--") else b"--" + b
        self._conn, self._resp = conn, resp

    def read(self) -> bytes:
        """The next part's JPEG bytes; raises MjpegHttpError when the stream ends."""
        resp = self._resp
        if resp is None:
            raise MjpegHttpError("not open")
        try:
            line = resp.readline(1024)
            while line and (not line.strip() or line.strip().startswith(self._boundary)):
                line = resp.readline(1024)  # blank lines and the boundary before a part
            length = None
            while line.strip():  # the part's headers
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
                line = resp.readline(1024)
            if not line:
                raise MjpegHttpError("stream ended")
            if length is not None:
                if length > MAX_PART:
                    raise MjpegHttpError(f"part of {length} bytes")
                data = resp.read(length)
                if len(data) < length:
                    raise MjpegHttpError("stream ended in a frame")
                return data
            return self._read_to_boundary(resp)
        except (OSError, http.client.HTTPException) as exc:
            raise MjpegHttpError(f"read failed: {exc}") from exc

    def _read_to_boundary(self, resp) -> bytes:
        chunks, size = [], 0
        while True:
            line = resp.readline(65536)
            if not line:
                raise MjpegHttpError("stream ended in a frame")
            if line.startswith(self._boundary):
                data = b"".join(chunks)
                return data[:-2] if data.endswith(b"\r\n") else data
            chunks.append(line)
            size += len(line)
            if size > MAX_PART:
                raise MjpegHttpError("part without end")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._resp = None
