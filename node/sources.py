"""Frame sources: synthetic scene, V4L2 device, RTSP/HTTP URL, video file, Pi camera.

A source is opened, read and closed by the capture thread only (node/capture.py), which
owns reconnecting; a source just reports failure (`SourceError` from `open`, `None`
from `read`). Constructors do no I/O.
"""

from __future__ import annotations

import logging
import os
import re
import time
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

URL_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.I)


class SourceError(Exception):
    """The source cannot be opened now; the capture thread retries with back-off."""


class Source(ABC):
    """One camera or stand-in. `paced` sources return at once, so capture paces them."""

    paced = False
    kind = "source"

    def __init__(self, width: int, height: int, fps: float):
        self.width, self.height, self.fps = width, height, fps

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None when the source is lost."""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.kind


class SyntheticSource(Source):
    """The built-in moving scene (node/synthetic.py): no hardware, known ground truth."""

    paced = True
    kind = "synthetic"

    def __init__(self, width: int, height: int, fps: float):
        super().__init__(width, height, fps)
        self._scene = None
        self._t0 = 0.0

    def open(self) -> None:
        from node.synthetic import SyntheticScene

        if self._scene is None:
            self._scene = SyntheticScene(self.width, self.height)
        self._t0 = time.monotonic()

    def read(self) -> np.ndarray | None:
        return self._scene.render(time.monotonic() - self._t0)


class OpenCVSource(Source):
    """V4L2 devices, network streams and files through cv2.VideoCapture.

    Files are reopened (not rewound) at their end, so a deleted or replaced file is
    noticed at the next loop instead of playing from an open descriptor forever.
    """

    def __init__(self, target: str | int, width: int, height: int, fps: float,
                 timeout_ms: int = 5000):
        super().__init__(width, height, fps)
        self.target = target
        self.timeout_ms = timeout_ms
        self._cap: cv2.VideoCapture | None = None
        if isinstance(target, int) or str(target).startswith("/dev/video"):
            self.kind = "v4l2"
        elif URL_RE.match(str(target)):
            self.kind = "url"
        else:
            self.kind = "file"
            self.paced = True

    def describe(self) -> str:
        if self.kind == "url":  # never log credentials embedded in a URL
            return re.sub(r"//[^/@]*@", "//***@", str(self.target))
        return f"{self.kind}:{self.target}"

    def open(self) -> None:
        if self.kind == "file" and not os.path.isfile(self.target):
            raise SourceError(f"file not found: {self.target}")
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
        if self.kind == "v4l2":
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        elif self.kind == "url":
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_ANY)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe()}")
        if self.kind == "v4l2":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return frame
        if self.kind == "file":
            # End of file: reopen from the path (see class docstring); SourceError says why.
            self.close()
            self.open()
            ok, frame = self._cap.read()
            return frame if ok else None
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PiCamera2Source(Source):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS `python3-picamera2`)."""

    kind = "picamera2"

    def __init__(self, width: int, height: int, fps: float):
        super().__init__(width, height, fps)
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise SourceError("picamera2 is not installed (apt install python3-picamera2, "
                              "and a venv with --system-site-packages)") from exc
        try:
            cam = Picamera2()
            conf = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)})
            cam.configure(conf)
            cam.start()
        except Exception as exc:  # picamera2 raises many types; all mean "not now"
            raise SourceError(f"cannot start Pi camera: {exc}") from exc
        self._cam = cam

    def read(self) -> np.ndarray | None:
        try:
            # picamera2's "RGB888" lays pixels out as [B, G, R]: OpenCV's order.
            return self._cam.capture_array("main")
        except Exception as exc:
            log.warning("Pi camera read failed: %s", exc)
            return None

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception as exc:
                log.debug("Pi camera close: %s", exc)
            self._cam = None


def make_source(spec: str | int, width: int, height: int, fps: float) -> Source:
    """Pick the source class for a `camera.source` value (see schemas/config.schema.json)."""
    if isinstance(spec, int):
        return OpenCVSource(spec, width, height, fps)
    s = str(spec).strip()
    if s == "synthetic":
        return SyntheticSource(width, height, fps)
    if s in ("picamera2", "picamera", "pi"):
        return PiCamera2Source(width, height, fps)
    if s.isdigit():
        return OpenCVSource(int(s), width, height, fps)
    if URL_RE.match(s) or s.startswith("/dev/"):
        return OpenCVSource(s, width, height, fps)
    return OpenCVSource(str(Path(s).expanduser()), width, height, fps)
