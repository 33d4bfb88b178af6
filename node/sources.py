"""Frame sources: synthetic scene, V4L2 device, RTSP/HTTP URL, video file, Pi camera.

A source is opened, read and closed by the capture thread only (node/capture.py), which
owns reconnecting; a source just reports failure (`SourceError` from `open`, `None`
from `read`). Constructors do no I/O. `read` returns a BGR array, or a `Jpeg` (the
camera's own bytes, node/mjpeg.py) from an MJPEG HTTP stream or a V4L2 camera in MJPG
mode; `actual` says what the camera really gave (format, size, rate), for the state.
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

from camnode.node.mjpeg import Jpeg, MjpegHttpError, MjpegHttpReader, as_jpeg

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
        # What the camera gave after open: {"format", "width", "height", "fps"}.
        self.actual: dict = {}

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | Jpeg | None:
        """The next BGR frame (or the camera's JPEG), or None when the source is lost."""

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
        from camnode.node.synthetic import SyntheticScene

        if self._scene is None:
            self._scene = SyntheticScene(self.width, self.height)
        self._t0 = time.monotonic()
        self.actual = {"format": "BGR", "width": self.width, "height": self.height,
                       "fps": self.fps}

    def read(self) -> np.ndarray | None:
        return self._scene.render(time.monotonic() - self._t0)


class OpenCVSource(Source):
    """V4L2 devices, network streams and files through cv2.VideoCapture.

    Files are reopened (not rewound) at their end, so a deleted or replaced file is
    noticed at the next loop instead of playing from an open descriptor forever.
    An http(s) URL answering MJPEG is read by `MjpegHttpReader` (the camera's JPEGs,
    undecoded); any other URL goes to FFmpeg. A V4L2 camera is asked for MJPG when
    `mjpg` (USB 2 carries HD only compressed) and then hands over its JPEGs too.
    """

    def __init__(self, target: str | int, width: int, height: int, fps: float,
                 timeout_ms: int = 5000, mjpg: bool = True):
        super().__init__(width, height, fps)
        self.target = target
        self.timeout_ms = timeout_ms
        self.mjpg = mjpg
        self._cap: cv2.VideoCapture | None = None
        self._http: MjpegHttpReader | None = None
        self._raw_jpeg = False  # V4L2 in MJPG mode without conversion: read() gives JPEG
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
        if self.kind == "url" and str(self.target).lower().startswith(("http:", "https:")):
            reader = MjpegHttpReader(str(self.target), self.timeout_ms / 1000)
            try:
                reader.open()
            except MjpegHttpError as exc:
                log.info("%s: %s; reading it with FFmpeg", self.describe(), exc)
            else:
                self._http = reader
                self.actual = {"format": "MJPG", "width": None, "height": None, "fps": None}
                return
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
        self._raw_jpeg = False
        if self.kind == "v4l2":
            if self.mjpg:  # the format first: the sizes a camera offers depend on it
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            fourcc = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
            if fourcc == "MJPG":  # hand the JPEGs over; decoded only when pixels are needed
                self._raw_jpeg = bool(cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))
            elif self.mjpg:
                log.warning("%s: MJPG refused by the camera, it gives %s", self.describe(),
                            fourcc or "an unknown format")
            self.actual = {"format": fourcc or None,
                           "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                           "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                           "fps": round(cap.get(cv2.CAP_PROP_FPS), 2)}
            log.info("%s gives %s %sx%s at %s fps", self.describe(), *self.actual.values())
        else:
            self.actual = {"format": "decoded by " + cap.getBackendName(),
                           "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
                           "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
                           "fps": round(cap.get(cv2.CAP_PROP_FPS), 2) or None}
        self._cap = cap

    def read(self) -> np.ndarray | Jpeg | None:
        if self._http is not None:
            try:
                jpeg = as_jpeg(self._http.read())
            except MjpegHttpError as exc:
                raise SourceError(str(exc)) from exc
            if jpeg is None:
                raise SourceError("a part of the MJPEG stream is not a JPEG")
            self.actual.update(width=jpeg.width, height=jpeg.height)
            return jpeg
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if ok and frame is not None:
            if self._raw_jpeg and frame.ndim <= 2 and frame.size and \
                    (frame.ndim == 1 or frame.shape[0] == 1):
                jpeg = as_jpeg(frame.tobytes())
                if jpeg is None:
                    raise SourceError("the camera sent a broken JPEG")
                return jpeg
            return frame
        if self.kind == "file":
            # End of file: reopen from the path (see class docstring); SourceError says why.
            self.close()
            self.open()
            ok, frame = self._cap.read()
            return frame if ok else None
        return None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
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
        self.actual = {"format": "RGB888", "width": self.width, "height": self.height,
                       "fps": self.fps}

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


def fourcc_text(value: float) -> str:
    """A FOURCC as OpenCV's `get` returns it (a float) as text, "" when unset."""
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if code and text.isprintable() else ""


def make_source(spec: str | int, width: int, height: int, fps: float,
                mjpg: bool = True) -> Source:
    """Pick the source class for a `camera.source` value (see schemas/config.schema.json);
    `mjpg` is `camera.mjpg` (V4L2 only)."""
    if isinstance(spec, int):
        return OpenCVSource(spec, width, height, fps, mjpg=mjpg)
    s = str(spec).strip()
    if s == "synthetic":
        return SyntheticSource(width, height, fps)
    if s in ("picamera2", "picamera", "pi"):
        return PiCamera2Source(width, height, fps)
    if s.isdigit():
        return OpenCVSource(int(s), width, height, fps, mjpg=mjpg)
    if URL_RE.match(s) or s.startswith("/dev/"):
        return OpenCVSource(s, width, height, fps, mjpg=mjpg)
    return OpenCVSource(str(Path(s).expanduser()), width, height, fps)
