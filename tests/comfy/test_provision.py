"""The provisioning's own decisions, without provisioning anything: which interpreter's packages ComfyUI's venv
is pointed at, and when a cached install counts as broken (and is rebuilt)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.comfy import provision
from tests.comfy.provision import ComfyInstall


def fake_venv(venv: Path, python_exit: int, recipe: dict | None = None) -> Path:
    """A venv whose 'python' is a script exiting with `python_exit` (and saying torch is missing), with the
    provisioning's marker; -> its python."""
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit {python_exit}\n")
    python.chmod(0o755)
    marker = {"recipe": provision._marker_data() if recipe is None else recipe}
    (venv / provision.MARKER).write_text(json.dumps(marker))
    return python


def fake_install(tmp_path: Path, python_exit: int, recipe: dict | None = None) -> ComfyInstall:
    """A ComfyUI folder (main.py) with such a venv inside."""
    comfy = tmp_path / "comfyui"
    comfy.mkdir(parents=True)
    (comfy / "main.py").write_text("")
    return ComfyInstall(comfy, fake_venv(comfy / ".venv", python_exit, recipe))


def test_the_host_interpreters_packages_are_what_comfyuis_venv_sees(tmp_path):
    install = fake_install(tmp_path, 0)
    provision._link_host_packages(install)
    pth = next(install.python.parent.parent.glob("lib/python*/site-packages")) / provision.HOST_PTH
    listed = pth.read_text().split()
    import torch  # the test interpreter's torch: where a user's venv keeps it

    assert any(Path(torch.__file__).is_relative_to(p) for p in listed), listed
    assert sys.prefix in " ".join(listed) or any(p.startswith(sys.base_prefix) for p in listed)


def test_a_cached_install_that_cannot_import_its_packages_is_broken(tmp_path):
    assert provision._problem(fake_install(tmp_path / "ok", 0)) == ""
    assert "No module named torch" in provision._problem(fake_install(tmp_path / "broken", 1))
    old = fake_install(tmp_path / "old", 0, recipe={"wheel_sha256": "older"})
    assert provision._problem(old) == "made by an older recipe"


def test_ensure_comfyui_rebuilds_a_broken_cache_and_says_so(tmp_path, monkeypatch, caplog):
    comfy = tmp_path / "my-comfyui"  # the user's own checkout: its venv lives in the cache
    comfy.mkdir()
    (comfy / "main.py").write_text("")
    cache = tmp_path / "cache"
    key = hashlib.sha256(str(comfy.resolve()).encode()).hexdigest()[:12]
    broken = fake_venv(cache / f"venv-{key}", 1)
    made = []
    monkeypatch.setenv("COMFYUI_DIR", str(comfy))
    monkeypatch.delenv("COMFYUI_PYTHON", raising=False)
    monkeypatch.setenv("GPTIMG_CACHE", str(cache))
    monkeypatch.setattr(provision, "_make_venv", made.append)
    with caplog.at_level("WARNING"):
        install = provision.ensure_comfyui()
    assert install.python == broken and made == [install]
    assert "unusable (ModuleNotFoundError: No module named torch): rebuilding" in caplog.text


@pytest.mark.parametrize("var", ["COMFYUI_DIR"])
def test_a_comfyui_dir_without_main_py_is_named(tmp_path, monkeypatch, var):
    monkeypatch.setenv(var, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no main.py"):
        provision.ensure_comfyui()
