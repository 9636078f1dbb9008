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
import tempfile
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


def require_browser() -> None:
    """Skip the calling test when no browser can run here, or fail it if ``GPTIMG_REQUIRE_BROWSER=1`` (CI)."""
    import pytest

    reason = browser_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("GPTIMG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GPTIMG_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


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
    base_url: str,
    workflow_path: Path,
    screenshot_path: Path,
    queue: bool = True,
    timeout: float = 120.0,
    *,
    probe_js: str | None = None,
    after_js: str | None = None,
    clip_screenshot_path: Path | None = None,
    load_api: bool = False,
    fit_view: bool = False,
    viewport: tuple[int, int] = (1400, 900),
) -> dict[str, Any]:
    """Load ``workflow_path`` (UI format) in the front end, optionally run it, screenshot it.

    Returns the script's JSON: ``ok``, ``console_errors`` (each ``{text, url}``), ``missing_node_types``,
    ``prompt_id``, ``prompt_error`` (the 400 body), ``status`` and ``outputs`` (from /history),
    ``ignored_console_errors`` (known offline/first-run noise) and ``timings_ms``.
    ``probe_js`` (page-side ``() => value``) is sampled while the prompt runs: its changes land in
    ``probes`` as ``{t_ms, phase, value}``. ``after_js`` (page-side ``async () => value``) runs after the
    prompt, before the screenshot; its value is ``after``, and its ``clip`` (CSS pixel rect) is saved to
    ``clip_screenshot_path``. ``load_api`` accepts an API-format ``workflow_path`` (loaded as a dropped
    API file is, with ``app.loadApiJson``); ``fit_view`` fits the whole graph in the full screenshot, of
    ``viewport`` (width, height) CSS pixels.
    """
    ensure_playwright()
    with tempfile.TemporaryDirectory(prefix="gptimg-pw-") as tmp:
        extra: list[str] = []
        for flag, src in (("--probe-js", probe_js), ("--after-js", after_js)):
            if src is not None:
                path = Path(tmp) / f"{flag[2:]}.js"
                path.write_text(src)
                extra += [flag, str(path)]
        if clip_screenshot_path is not None:
            extra += ["--clip-screenshot", str(clip_screenshot_path)]
        if load_api:
            extra.append("--load-api")
        if fit_view:
            extra.append("--fit-view")
        extra += ["--viewport", f"{viewport[0]}x{viewport[1]}"]
        return _run_check(base_url, workflow_path, screenshot_path, queue, timeout, extra)


def _run_check(
    base_url: str, workflow_path: Path, screenshot_path: Path, queue: bool, timeout: float, extra: list[str]
) -> dict[str, Any]:
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
    cmd += extra
    env = {**os.environ, "CHROMIUM": str(chromium_path())}
    # The script keeps its own deadline; this outer one covers browser start and shutdown.
    proc = subprocess.run(cmd, cwd=PW_DIR, env=env, capture_output=True, text=True, timeout=timeout + 60)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"browser check failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])
