"""Fixtures of the node tests: a real ComfyUI imported in-process (see comfy_inprocess.py), recorders for
websocket events and progress-bar updates, and the built-in models loaded through the loader nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.comfy.provision import ensure_comfyui
from tests.nodes.comfy_inprocess import Comfy, ProgressLog, Recorder


@pytest.fixture(scope="session")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Comfy:
    """ComfyUI 0.3.75 with our pack loaded (provisioned on first use, ~20 s; then ~4 s to import)."""
    return Comfy(ensure_comfyui(), tmp_path_factory.mktemp("comfy"))


@pytest.fixture
def recorder(comfy: Comfy, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recording PromptServer.instance for this test (websocket events land in .events)."""
    rec = Recorder()
    monkeypatch.setattr(comfy.server.PromptServer, "instance", rec, raising=False)
    return rec


@pytest.fixture
def progress(comfy: Comfy) -> Iterator[ProgressLog]:
    """A progress-bar hook like the server's (interrupt check first, then record)."""
    log = ProgressLog()

    def hook(value: int, total: int, preview: Any, prompt_id: str | None = None, node_id: str | None = None) -> None:
        comfy.mm.throw_exception_if_processing_interrupted()
        log.updates.append((value, total, preview))
        if log.on_update is not None:
            log.on_update(value, total)

    comfy.utils.set_progress_bar_global_hook(hook)
    yield log
    comfy.utils.set_progress_bar_global_hook(None)
    comfy.mm.interrupt_current_processing(False)


@pytest.fixture(scope="session")
def loaded(comfy: Comfy) -> dict[str, Any]:
    """The built-in models, loaded once through the loader nodes."""
    run = comfy.run
    return {
        "t2i": run("GPTImgLoadModel", ckpt_name="builtin t2i", dtype="auto", n_head=0, grid=0)[0][0],
        "c2i": run("GPTImgLoadModel", ckpt_name="builtin c2i", dtype="auto", n_head=0, grid=0)[0][0],
        "vq": run("GPTImgLoadVQ", vq_name="builtin")[0][0],
        "te": run("GPTImgLoadTextEncoder", encoder_name="builtin")[0][0],
    }
