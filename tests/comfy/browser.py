"""Check a UI-format workflow in the real ComfyUI front end (headless Debian chromium).

Python side of ``pw/check_workflow.mjs``; ``npm`` installs the pinned ``playwright-core`` into
``pw/node_modules`` on first use (no browser download: we drive ``/usr/bin/chromium``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.comfy.provision import cache_dir

PW_DIR = Path(__file__).resolve().parent / "pw"
SCRIPT = PW_DIR / "check_workflow.mjs"


def chromium_path() -> Path:
    return Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def browser_unavailable_reason() -> str | None:
    """Why the browser check cannot run here (for ``pytest.skip``), or None when it can."""
    if not chromium_path().is_file():
        return f"no chromium at {chromium_path()} (apt-get install -y chromium, or set CHROMIUM)"
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (install Node.js >= 20)"
    return None


def ensure_playwright() -> None:
    """Install the pinned playwright-core into ``pw/node_modules`` unless it is already there."""
    pinned = json.loads((PW_DIR / "package.json").read_text())["dependencies"]["playwright-core"]
    installed = PW_DIR / "node_modules" / "playwright-core" / "package.json"
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.is_file() and json.loads(installed.read_text())["version"] == pinned:
            return
        cmd = ["npm", "ci" if (PW_DIR / "package-lock.json").is_file() else "install", "--no-audit", "--no-fund"]
        proc = subprocess.run(cmd, cwd=PW_DIR, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed in {PW_DIR}:\n{proc.stdout}{proc.stderr}")


def run_browser_check(
    base_url: str, workflow_path: Path, screenshot_path: Path, queue: bool = True, timeout: float = 120.0
) -> dict[str, Any]:
    """Load ``workflow_path`` (UI format) in the front end, optionally run it, screenshot it.

    Returns the script's JSON: ``ok``, ``console_errors`` (each ``{text, url}``), ``missing_node_types``,
    ``prompt_id``, ``prompt_error`` (the 400 body), ``status`` and ``outputs`` (from /history),
    ``ignored_console_errors`` (known offline/first-run noise) and ``timings_ms``.
    """
    ensure_playwright()
    cmd = [
        "node",
        str(SCRIPT),
        "--url",
        base_url.rstrip("/") + "/",
        "--workflow",
        str(workflow_path),
        "--screenshot",
        str(screenshot_path),
        "--timeout-ms",
        str(int(timeout * 1000)),
    ]
    if queue:
        cmd.append("--queue")
    env = {**os.environ, "CHROMIUM": str(chromium_path())}
    # The script keeps its own deadline; this outer one covers browser start and shutdown.
    proc = subprocess.run(cmd, cwd=PW_DIR, env=env, capture_output=True, text=True, timeout=timeout + 60)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"browser check failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])
