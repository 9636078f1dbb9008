"""One real ComfyUI with this pack (the repo root, linked as ``gptimg``) for every integration test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.comfy.provision import ensure_comfyui
from tests.comfy.server import REPO_ROOT, ComfyClient, comfy_server
from tests.integration.helpers import artifacts_dir

BUILTIN = REPO_ROOT / "gptimg_core" / "builtin" / "weights"


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders holding only deliberately wrong files (the workflows use the built-in model):
    a VQ where GPT checkpoints go and a GPT where VQs go, for the loaders' error messages."""
    root = tmp_path_factory.mktemp("models")
    dirs = {name: root / name for name in ("gptimg", "gptimg_vq", "text_encoders")}
    for d in dirs.values():
        d.mkdir()
    (dirs["gptimg"] / "wrong_kind_vq.safetensors").symlink_to(BUILTIN / "vq.safetensors")
    (dirs["gptimg_vq"] / "wrong_kind_gpt.safetensors").symlink_to(BUILTIN / "gpt_t2i.safetensors")
    return dirs


@pytest.fixture(scope="session")
def gptimg_server(tmp_path_factory: pytest.TempPathFactory, model_dirs: dict[str, Path]) -> Iterator[ComfyClient]:
    if not (REPO_ROOT / "__init__.py").is_file():
        pytest.skip("the pack has no __init__.py yet (nodes not written)")
    root = tmp_path_factory.mktemp("gptimg_comfy")
    with comfy_server(
        ensure_comfyui(), packs=[REPO_ROOT], models=model_dirs, output_dir=root / "output", run_dir=root / "run"
    ) as client:
        yield client


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and output images go ($GPTIMG_ARTIFACTS, default tests/integration/artifacts)."""
    return artifacts_dir()
