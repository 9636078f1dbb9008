"""Run a real ComfyUI server for tests: scratch folders, our packs linked in, a small HTTP client.

    with comfy_server(ensure_comfyui(), packs=[REPO_ROOT], models={"gptimg": d}, output_dir=out) as c:
        prompt_id = c.post_prompt(api_json)
        entry = c.wait(prompt_id, timeout=120)

Only 127.0.0.1; HTTP through urllib so the tests need nothing beyond pillow.
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from tests.comfy.provision import ComfyInstall
from tests.comfy.ws import EventStream

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "gptimg"  # the folder (and module) name ComfyUI gives the repo root


class PromptRejected(RuntimeError):
    """``POST /prompt`` refused the workflow; ``body`` is ComfyUI's ``{error, node_errors}`` JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.error: dict[str, Any] = body.get("error") or {}
        self.node_errors: dict[str, Any] = body.get("node_errors") or {}
        super().__init__(f"prompt rejected (HTTP {status}): {json.dumps(body, indent=1)}")


class PromptFailed(RuntimeError):
    """A queued prompt ended with ``status_str == "error"``; ``entry`` is its history entry."""

    def __init__(self, prompt_id: str, entry: dict[str, Any]) -> None:
        self.prompt_id = prompt_id
        self.entry = entry
        messages = [
            m
            for m in entry.get("status", {}).get("messages", [])
            if m[0] in ("execution_error", "execution_interrupted")
        ]
        super().__init__(f"prompt {prompt_id} failed: {json.dumps(messages, indent=1)}")


class ComfyClient:
    """Minimal client for a running test server (stdlib HTTP)."""

    def __init__(self, base_url: str, log_path: Path) -> None:
        self.base_url = base_url
        self.log_path = log_path
        self.client_id = uuid.uuid4().hex

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, bytes]:
        """Send one request; returns (status, raw body) also for HTTP errors."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str) -> Any:
        status, raw = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered HTTP {status}: {raw[:500]!r}")
        return json.loads(raw)

    def post_prompt(self, prompt: Mapping[str, Any]) -> str:
        """Queue an API-format workflow; returns its prompt_id or raises ``PromptRejected``.

        A 200 answer that still lists ``node_errors`` (some outputs dropped) also raises: tests
        should not pass on a partially accepted workflow.
        """
        status, raw = self.request("POST", "/prompt", {"prompt": prompt, "client_id": self.client_id})
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = {"error": {"type": "not_json", "message": raw.decode(errors="replace")}}
        if status != 200 or body.get("node_errors"):
            raise PromptRejected(status, body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0, *, check: bool = True) -> dict[str, Any]:
        """Poll ``/history`` until the prompt ends; returns its history entry.

        With ``check`` an execution error or interrupt raises ``PromptFailed``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            status = (entry or {}).get("status", {})
            if status.get("completed") or status.get("status_str") == "error":
                if check and status.get("status_str") == "error":
                    raise PromptFailed(prompt_id, entry)
                return entry
            time.sleep(0.1)
        raise TimeoutError(
            f"prompt {prompt_id} not finished after {timeout} s; server log tail:\n{_tail(self.log_text())}"
        )

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> Image.Image:
        """Fetch an image through ``GET /view`` (fully loaded PIL image)."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        status, raw = self.request("GET", f"/view?{query}")
        if status != 200:
            raise RuntimeError(f"/view?{query} answered HTTP {status}: {raw[:300]!r}")
        image = Image.open(io.BytesIO(raw))
        image.load()
        return image

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt (only if it is ``prompt_id``, when given)."""
        status, raw = self.request("POST", "/interrupt", {"prompt_id": prompt_id} if prompt_id else {})
        if status != 200:
            raise RuntimeError(f"/interrupt answered HTTP {status}: {raw[:300]!r}")

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """All node definitions, or ``{node_class: definition}`` for one."""
        return self.get_json("/object_info" + (f"/{urllib.parse.quote(node_class)}" if node_class else ""))

    def events(self) -> EventStream:
        """A websocket listener for this client's events (use as a context manager, before posting)."""
        return EventStream(self.base_url, self.client_id)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def comfy_server(
    install: ComfyInstall,
    *,
    packs: Sequence[Path],
    models: Mapping[str, Path],
    output_dir: Path,
    port: int | None = None,
    run_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    start_timeout: float = 90.0,
) -> Iterator[ComfyClient]:
    """Start ComfyUI with ``packs`` linked into a scratch ``custom_nodes``; stop it on exit.

    ``models`` maps model folder names (``gptimg``, ``text_encoders``...) to folders. A pack that
    fails to import makes start-up fail. ``run_dir`` (default: a temporary folder) is ComfyUI's
    base directory and holds ``custom_nodes/``, the yaml and ``comfy.log``.
    """
    with tempfile.TemporaryDirectory(prefix="gptimg-comfy-") as tmp:
        run = Path(run_dir or tmp).resolve()
        # `run` is also ComfyUI's --base-directory (models, input, temp, user, custom_nodes), so
        # tests never write into the shared install; the yaml entry for custom_nodes is then a
        # duplicate that ComfyUI ignores, kept so the folder is registered either way.
        custom_nodes = run / "custom_nodes"
        for d in (custom_nodes, output_dir):
            d.mkdir(parents=True, exist_ok=True)
        for pack in packs:
            pack = Path(pack).resolve()
            if not (pack / "__init__.py").is_file():
                raise FileNotFoundError(f"pack {pack} has no __init__.py")
            link = custom_nodes / (PACK_NAME if pack == REPO_ROOT else pack.name)
            if link.exists():
                raise ValueError(f"two packs would be linked as {link.name!r}: {packs}")
            link.symlink_to(pack, target_is_directory=True)

        yaml_path = run / "extra_model_paths.yaml"
        entries = {"custom_nodes": custom_nodes, **{k: Path(v).resolve() for k, v in models.items()}}
        # json strings are valid yaml scalars, so paths with odd characters stay intact
        yaml_path.write_text("gptimg_tests:\n" + "".join(f"  {k}: {json.dumps(str(v))}\n" for k, v in entries.items()))

        port = port or _free_port()
        cmd = [
            str(install.python),
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-auto-launch",
            "--extra-model-paths-config",
            str(yaml_path),
            "--output-directory",
            str(Path(output_dir).resolve()),
            "--base-directory",
            str(run),
            "--database-url",
            "sqlite:///:memory:",
            *extra_args,
        ]
        env = {**os.environ, "PYTHONPATH": str(install.stubs_dir), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        log_path = run / "comfy.log"
        client = ComfyClient(f"http://127.0.0.1:{port}", log_path)
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                cwd=install.comfy_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        try:
            _wait_ready(client, proc, start_timeout)
            # An error inside comfy_entrypoint()/get_node_list() is only a warning, not IMPORT FAILED.
            failed = [
                line
                for line in client.log_text().splitlines()
                if str(custom_nodes) in line and ("(IMPORT FAILED)" in line or "comfy_entrypoint in" in line)
            ]
            if failed:
                raise RuntimeError("pack import failed:\n" + "\n".join(failed) + f"\n{_tail(client.log_text(), 60)}")
            yield client
        finally:
            _stop(proc)


def _die_with_parent() -> None:
    # The server has its own session (so we can signal its group); without this it would outlive
    # a test run killed by SIGTERM/SIGKILL, where no `finally` runs.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(client: ComfyClient, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(
                f"ComfyUI exited with code {proc.returncode} during start-up:\n{_tail(client.log_text())}"
            )
        try:
            if client.request("GET", "/system_stats", timeout=2)[0] == 200:
                log.info("ComfyUI ready at %s after %.1f s", client.base_url, time.monotonic() - t0)
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise TimeoutError(f"ComfyUI gave no /system_stats after {timeout} s:\n{_tail(client.log_text())}")


def _stop(proc: subprocess.Popen) -> None:
    # The server runs in its own session: signal the whole group so no worker outlives it.
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
