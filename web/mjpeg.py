"""MJPEG framing: one `multipart/x-mixed-replace` part per frame, built once per frame
by the node link (web/nodelink.py) and written unchanged to every viewer (web/stream.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from camnode.node import wire

BOUNDARY = b"frame"


@dataclass(frozen=True)
class Frame:
    header: wire.FrameHeader
    jpeg: bytes
    part: bytes  # multipart headers + JPEG + CRLF + next boundary, shared by all clients
    received: float


def build_part(header: wire.FrameHeader, jpeg: bytes) -> bytes:
    """One part of the MJPEG stream; the boundary follows the JPEG at once so a browser
    knows the image is complete and draws it without waiting for the next frame."""
    head = (b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n"
            b"X-Frame-Seq: %d\r\n\r\n" % (len(jpeg), header.ts, header.seq))
    return b"".join((head, jpeg, b"\r\n--", BOUNDARY, b"\r\n"))
