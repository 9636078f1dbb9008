"""A real ComfyUI 0.3.75 (provisioned from PyPI by tests/comfy/provision.py) imported into this process, with
our pack loaded exactly as the server loads it (`nodes.load_custom_node` on a `custom_nodes/gptimg` link);
nodes execute through ComfyUI's `execution` module (class clone + lock, hidden inputs, inference mode), on
the CPU. Used by the node tests (conftest.py) and by tests/make_workflows.py.

Import order matters: ComfyUI's folder goes first on sys.path (before `tests/comfy`, a namespace folder of the
same name as ComfyUI's `comfy`, and before the repo root, whose `nodes/` package is ours, not ComfyUI's), and
`--cpu` is set before `comfy.model_management` is imported.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from tests.comfy.provision import ComfyInstall

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK = "gptimg"


@dataclass
class Recorder:
    """Stands in for the running PromptServer (`PromptServer.instance`, the progress hook's server): records
    what would go over the websocket."""

    client_id: str | None = "test-client"
    last_node_id: str | None = None
    last_prompt_id: str | None = None
    sockets_metadata: dict = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.events.append((event, data))

    def queue_updated(self) -> None:
        pass

    def named(self, event: str) -> list[Any]:
        return [d for e, d in self.events if e == event]


@dataclass
class ProgressLog:
    """What a progress-bar hook received: (value, total, preview) per update."""

    updates: list[tuple[int, int, Any]] = field(default_factory=list)
    on_update: Any = None  # optional callable(value, total) run inside the hook

    def previews(self) -> list[Any]:
        return [p for _, _, p in self.updates if p is not None]


class Comfy:
    """A ComfyUI imported in this process, with our pack loaded; `run` executes one node as ComfyUI does.

    Make one per process: ComfyUI's modules are process-wide (the node tests share a session fixture).
    """

    def __init__(self, install: ComfyInstall, scratch: Path) -> None:
        self.install = install
        _put_comfy_first(install)
        from comfy.cli_args import args

        args.cpu = True  # before comfy.model_management is imported: everything on the CPU
        import utils.install_util  # noqa: F401  (main.py imports `utils` before nodes.py puts comfy/ on sys.path)

        self.folder_paths = importlib.import_module("folder_paths")
        self.folder_paths.set_temp_directory(str(scratch / "temp"))
        self.folder_paths.set_output_directory(str(scratch / "output"))
        self.folder_paths.set_input_directory(str(scratch / "input"))
        self.mm = importlib.import_module("comfy.model_management")
        self.utils = importlib.import_module("comfy.utils")
        self.nodes = importlib.import_module("nodes")
        self.execution = importlib.import_module("execution")
        self.server = importlib.import_module("server")
        from comfy_api.v0_0_2 import io

        self.io = io
        link = scratch / "custom_nodes" / PACK
        link.parent.mkdir(parents=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
        if not asyncio.run(self.nodes.load_custom_node(str(link))):
            raise RuntimeError(f"ComfyUI could not load the pack from {link}; see the log above")
        extras = Path(self.nodes.__file__).parent / "comfy_extras" / "nodes_mask.py"  # SolidMask, MaskComposite
        if not asyncio.run(self.nodes.load_custom_node(str(extras), module_parent="comfy_extras")):
            raise RuntimeError(f"ComfyUI could not load {extras}")
        self.pack: ModuleType = sys.modules[str(link).replace(".", "_x_")]

    def node(self, node_id: str) -> type:
        return self.nodes.NODE_CLASS_MAPPINGS[node_id]

    def object_info(self, node_type: str) -> dict:
        """What GET /object_info/<node_type> answers (server.py's node_info, V1 and V3 nodes)."""
        cls = self.node(node_type)
        if hasattr(cls, "GET_NODE_INFO_V1"):
            return cls.GET_NODE_INFO_V1()
        inputs = cls.INPUT_TYPES()
        return {
            "input": inputs,
            "input_order": {key: list(value) for key, value in inputs.items()},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "name": node_type,
            "display_name": self.nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_type, node_type),
            "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
        }

    def core(self, name: str = "") -> ModuleType:
        """The pack's copy of gptimg_core (or a submodule), as the nodes see it."""
        return importlib.import_module(f"{self.pack.__name__}.gptimg_core" + (f".{name}" if name else ""))

    def run(self, node_id: str, unique_id: str = "1", **inputs: Any) -> tuple[list[Any], dict]:
        """Execute node `node_id` on `inputs` through ComfyUI's execution path; -> (outputs, ui)."""
        cls = self.node(node_id)
        hidden = {self.io.Hidden.unique_id: unique_id, self.io.Hidden.prompt: {}, self.io.Hidden.extra_pnginfo: None}
        data = {k: [v] for k, v in inputs.items()}

        async def go() -> tuple:
            return await self.execution.get_output_data("test-prompt", unique_id, cls, data, hidden_inputs=hidden)

        with torch.inference_mode():
            output, ui, _, pending = asyncio.run(go())
        assert not pending
        return [o[0] for o in output], ui

    def run_prompt(self, prompt: dict, server: Recorder) -> dict:
        """Validate and execute an API-format workflow as the server's prompt worker does; -> history entry."""
        prompt_id = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            raise AssertionError(f"ComfyUI rejected the workflow: {error} {node_errors}")
        executor = self.execution.PromptExecutor(server, cache_args={"ram": 0.0})
        executor.execute(prompt, prompt_id, {"client_id": server.client_id}, outputs)
        return {"success": executor.success, "messages": executor.status_messages, **executor.history_result}


def _put_comfy_first(install: ComfyInstall) -> None:
    """ComfyUI's folder first on sys.path; its venv's extra packages (aiohttp, psutil, ...) and the
    torchvision/torchaudio stubs last, so this interpreter's own packages win."""
    comfy_dir = str(install.comfy_dir)
    for name in [m for m in sys.modules if m == "comfy" or m.startswith("comfy.")]:
        if not str(getattr(sys.modules[name], "__file__", "") or "").startswith(comfy_dir):
            del sys.modules[name]  # a namespace `comfy` picked up from tests/comfy
    sys.path.insert(0, comfy_dir)
    # every site-packages dir ComfyUI's own interpreter sees (its venv's, and the base one it inherits)
    listed = subprocess.run(
        [str(install.python), "-c", "import json, sys; print(json.dumps([p for p in sys.path if 'packages' in p]))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    extra = json.loads(listed.stdout)
    if importlib.util.find_spec("torchvision") is None:
        # transformers caches "is torchvision installed?" at first use; with the stubs visible it would say
        # yes and T5 (our text encoder) would fail to import. Ask it first, while the answer is no.
        importlib.import_module("transformers.models.t5.modeling_t5")
        extra.append(str(install.stubs_dir))
    sys.path.extend(p for p in extra if p not in sys.path)
