"""Every API-format workflow runs on a real ComfyUI through POST /prompt, and its images come back right."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from gptimg_core.shapes import CLASS_NAMES
from tests.comfy.server import ComfyClient, PromptRejected
from tests.integration.helpers import (
    API_DIR,
    BUILTIN_SIZE,
    CHECKER_MIN_PASS_RATE,
    CLASS_MIN_PASS_RATE,
    WORKFLOW_NAMES,
    WORKFLOWS,
    blank_reason,
    class_pass_rate,
    load_api,
    needs_official_files,
    nodes_of,
    output_images,
    prompt_pass_rate,
    smoke_weights_reason,
)

pytestmark = pytest.mark.comfy

API_NAMES = sorted(p.name.removesuffix("_api.json") for p in API_DIR.glob("*_api.json"))
BUILTIN_NAMES = [n for n in API_NAMES if not needs_official_files(n)]
OFFICIAL_NAMES = [n for n in API_NAMES if needs_official_files(n)]


def test_every_workflow_comes_in_both_formats_with_a_thumbnail() -> None:
    for name in WORKFLOW_NAMES:
        ui = WORKFLOWS / f"{name}.json"
        assert ui.is_file(), f"missing {ui}"
        assert isinstance(json.loads(ui.read_text()).get("nodes"), list), f"{ui} is not UI format"
        assert (API_DIR / f"{name}_api.json").is_file(), f"missing the API twin of {ui}"
        assert (WORKFLOWS / f"{name}.jpg").is_file(), f"missing the thumbnail of {ui}"
    # ComfyUI lists every workflows/*.json as a template: only UI-format files may live there.
    for path in WORKFLOWS.glob("*.json"):
        assert "nodes" in json.loads(path.read_text()), f"{path} is API format; move it to workflows/api/"


@pytest.fixture(scope="module")
def run_workflow(gptimg_server: ComfyClient) -> Callable[[str], dict[str, list[Image.Image]]]:
    """name -> {output node id: images}; each workflow runs once per module."""
    done: dict[str, dict[str, list[Image.Image]]] = {}

    def run(name: str) -> dict[str, list[Image.Image]]:
        if name not in done:
            entry = gptimg_server.wait(gptimg_server.post_prompt(load_api(name)), timeout=300)
            assert entry["status"]["status_str"] == "success"
            done[name] = output_images(gptimg_server, entry)
        return done[name]

    return run


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_workflow_runs(run_workflow, name: str, artifacts: Path) -> None:
    images = run_workflow(name)
    assert images, f"{name}: no images in the outputs"
    for node_id, batch in images.items():
        for i, im in enumerate(batch):
            im.save(artifacts / f"api_{name}_{node_id}_{i}.png")
            w, h = im.size
            assert w % 8 == 0 and h % 8 == 0 and w >= 64 and h >= 64, f"{name} node {node_id}: size {im.size}"
            assert blank_reason(im) is None, f"{name} node {node_id} image {i}: {blank_reason(im)}"
    if name in ("text_to_image", "class_to_image"):
        for node_id, batch in images.items():
            assert all(im.size == BUILTIN_SIZE for im in batch), f"{name} node {node_id}"


def test_text_to_image_draws_its_prompt(run_workflow) -> None:
    reason = smoke_weights_reason("t2i")
    if reason:
        pytest.skip(f"checker not enforced: {reason}")
    (encode,) = nodes_of(load_api("text_to_image"), "GPTImgEncodePrompt").values()
    images = [im for batch in run_workflow("text_to_image").values() for im in batch]
    rate = prompt_pass_rate(encode["inputs"]["prompt"], images)
    assert rate >= CHECKER_MIN_PASS_RATE, f"the shapes checker accepted {rate:.0%} of the images"


def test_class_to_image_draws_its_class(run_workflow) -> None:
    reason = smoke_weights_reason("c2i")
    if reason:
        pytest.skip(f"checker not enforced: {reason}")
    (label,) = nodes_of(load_api("class_to_image"), "GPTImgClassLabel").values()
    value = str(label["inputs"]["class"]).strip()
    name = CLASS_NAMES[int(value)] if value.isdigit() else value
    images = [im for batch in run_workflow("class_to_image").values() for im in batch]
    rate = class_pass_rate(name, images)
    assert rate >= CLASS_MIN_PASS_RATE, f"class {name!r}: the shapes checker accepted {rate:.0%} of the images"


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_official_workflow_names_its_missing_files(gptimg_server: ComfyClient, name: str) -> None:
    """Without LlamaGen's files the prompt is refused (or fails) naming the missing file, not a crash."""
    prompt = load_api(name)
    wanted = [
        v
        for node in prompt.values()
        if node["class_type"] in ("GPTImgLoadModel", "GPTImgLoadVQ", "GPTImgLoadTextEncoder")
        for k, v in node["inputs"].items()
        if k in ("ckpt_name", "vq_name", "encoder_name") and v != "builtin" and not str(v).startswith("builtin")
    ]
    assert wanted, f"{name}: loads no official file?"
    try:
        entry = gptimg_server.wait(gptimg_server.post_prompt(prompt), timeout=120, check=False)
    except PromptRejected as e:
        assert e.status == 400
        text = json.dumps(e.body)
        assert any(f in text for f in wanted), f"{name}: the refusal names none of {wanted}: {text[:2000]}"
        assert "ComfyUI/models/gptimg" in text, f"{name}: the refusal says not where the files go: {text[:2000]}"
        for node_id, err in e.node_errors.items():
            assert err["class_type"].startswith("GPTImgLoad"), f"{name}: node {node_id} {err}"
        return
    assert entry["status"]["status_str"] == "error", f"{name} ran without LlamaGen's files?"
    text = json.dumps(entry["status"]["messages"])
    assert any(f in text for f in wanted), f"{name}: the error names none of {wanted}: {text[:2000]}"
