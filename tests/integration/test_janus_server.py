"""The Janus-Pro workflow files, unchanged, in a real ComfyUI server on a tiny random folder named Janus-Pro-1B
(24x24 tokens, 384x384 images like the real one): they run, the sampler streams progress, stats and live
previews, and an interrupt stops it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest

from tests.comfy.provision import ensure_comfyui
from tests.comfy.server import REPO_ROOT, ComfyClient, comfy_server

sys.path.insert(0, str(REPO_ROOT / "tests"))
import tiny_janus as tj  # noqa: E402

pytestmark = pytest.mark.comfy

STATS = "gptimg.sampling_stats"
API = REPO_ROOT / "workflows" / "api"


@pytest.fixture(scope="module")
def janus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyClient]:
    root = tmp_path_factory.mktemp("janus_models")
    models = {name: root / name for name in ("gptimg", "gptimg_vq", "text_encoders")}
    for d in models.values():
        d.mkdir()
    tj.build(models["gptimg"] / "Janus-Pro-1B", tj.Shape(grid=24, codes=64))
    run = tmp_path_factory.mktemp("janus_comfy")
    with comfy_server(
        ensure_comfyui(), packs=[REPO_ROOT], models=models, output_dir=run / "output", run_dir=run / "run"
    ) as client:
        yield client


def load(name: str) -> dict:
    return json.loads((API / f"{name}_api.json").read_text())


@pytest.mark.parametrize("name", ["janus_pro_t2i", "janus_pro_inpainting"])
def test_janus_workflow_runs_with_progress_and_previews(janus_server: ComfyClient, name: str) -> None:
    prompt = load(name)
    (sampler,) = [k for k, v in prompt.items() if v["class_type"] == "GPTImgSampler"]
    (save,) = [k for k, v in prompt.items() if v["class_type"] == "SaveImage"]
    with janus_server.events() as events:
        prompt_id = janus_server.post_prompt(prompt)
        entry = janus_server.wait(prompt_id, timeout=300)
    stats = [d for d in events.of_type(STATS) if d["node"] == sampler]
    assert stats and stats[-1]["finished"] and stats[-1]["done"] == stats[-1]["total"] == 24 * 24
    assert events.binary_frames > 0, "no live previews (the sampler has the Janus VQ connected)"
    images = entry["outputs"][save]["images"]
    shown = janus_server.view(images[0]["filename"], images[0]["subfolder"], images[0]["type"])
    assert shown.size == (384, 384) and len(images) == prompt[sampler]["inputs"]["batch_size"]


def test_interrupt_stops_the_janus_sampler(janus_server: ComfyClient) -> None:
    prompt = load("janus_pro_t2i")
    prompt["5"]["inputs"]["batch_size"] = 16  # several seconds of sampling: the interrupt lands inside
    with janus_server.events() as events:
        prompt_id = janus_server.post_prompt(prompt)
        events.wait_for(lambda m: m["type"] == STATS and m["data"]["node"] == "5" and not m["data"]["finished"], 120)
        t0 = time.monotonic()
        janus_server.interrupt(prompt_id)
        entry = janus_server.wait(prompt_id, timeout=60, check=False)
        latency = time.monotonic() - t0
    (interrupted,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted["node_type"] == "GPTImgSampler" and latency < 5.0
