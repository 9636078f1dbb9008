"""The test harness itself: a real ComfyUI runs a throwaway V3 pack, over HTTP and in a browser."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.comfy.browser import require_browser, run_browser_check
from tests.comfy.provision import ensure_comfyui
from tests.comfy.server import ComfyClient, PromptRejected, comfy_server

pytestmark = pytest.mark.comfy

ECHO_PACK = """
from comfy_api.v0_0_2 import ComfyExtension, io


class GptimgHarnessEcho(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GptimgHarnessEcho",
            display_name="Harness Echo",
            category="gptimg/testing",
            inputs=[io.Int.Input("value", default=8, min=1, max=4096)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(value)


class HarnessExtension(ComfyExtension):
    async def get_node_list(self):
        return [GptimgHarnessEcho]


def comfy_entrypoint():
    return HarnessExtension()
"""

GREEN = 0x00FF00


def echo_prompt(width: int) -> dict:
    """API format: Echo(width) -> EmptyImage(width x 16, green) -> SaveImage."""
    return {
        "1": {"class_type": "GptimgHarnessEcho", "inputs": {"value": width}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": ["1", 0], "height": 16, "batch_size": 1, "color": GREEN}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "harness"}},
    }


def echo_workflow_ui(width: int) -> dict:
    """The same graph in UI format (what the front end saves and loads)."""
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "nodes": [
            {
                "id": 1,
                "type": "GptimgHarnessEcho",
                "pos": [50, 100],
                "size": [250, 60],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
                "properties": {},
                "widgets_values": [width],
            },
            {
                "id": 2,
                "type": "EmptyImage",
                "pos": [350, 100],
                "size": [250, 130],
                "flags": {},
                "order": 1,
                "mode": 0,
                "inputs": [{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 1}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
                "properties": {},
                "widgets_values": [512, 16, 1, GREEN],
            },
            {
                "id": 3,
                "type": "SaveImage",
                "pos": [650, 100],
                "size": [300, 300],
                "flags": {},
                "order": 2,
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
                "outputs": [],
                "properties": {},
                "widgets_values": ["harness_ui"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyClient]:
    root = tmp_path_factory.mktemp("harness")
    pack = root / "gptimg_harness"
    pack.mkdir()
    (pack / "__init__.py").write_text(textwrap.dedent(ECHO_PACK))
    models = root / "models"
    models.mkdir()
    (models / "dummy.safetensors").write_bytes(b"")
    with comfy_server(
        ensure_comfyui(), packs=[pack], models={"gptimg": models}, output_dir=root / "output", run_dir=root / "run"
    ) as client:
        yield client


def test_object_info_lists_pack_node(comfy: ComfyClient) -> None:
    info = comfy.object_info("GptimgHarnessEcho")["GptimgHarnessEcho"]
    assert info["category"] == "gptimg/testing"
    assert info["input"]["required"]["value"] == ["INT", {"default": 8, "min": 1, "max": 4096}]
    assert info["output"] == ["INT"]
    assert info["python_module"] == "custom_nodes.gptimg_harness"


def test_extra_model_folder_is_registered(comfy: ComfyClient) -> None:
    assert comfy.get_json("/models/gptimg") == ["dummy.safetensors"]


def test_api_prompt_runs_and_image_comes_back(comfy: ComfyClient) -> None:
    entry = comfy.wait(comfy.post_prompt(echo_prompt(24)), timeout=60)
    assert entry["status"]["status_str"] == "success"
    (saved,) = entry["outputs"]["3"]["images"]
    image = comfy.view(saved["filename"], saved["subfolder"], saved["type"])
    assert image.size == (24, 16)
    assert image.convert("RGB").getpixel((0, 0)) == (0, 255, 0)


def test_websocket_events_arrive_in_order(comfy: ComfyClient) -> None:
    with comfy.events() as events:
        prompt_id = comfy.post_prompt(echo_prompt(40))
        events.wait_for(lambda m: m["type"] == "execution_success" and m["data"]["prompt_id"] == prompt_id, 60)
    executed = [d["node"] for d in events.of_type("executed") if d["prompt_id"] == prompt_id]
    assert executed == ["3"]  # only output nodes report "executed"
    types = [m["type"] for m in events.messages if (m["data"] or {}).get("prompt_id") == prompt_id]
    assert types[0] == "execution_start" and "execution_success" in types


def test_invalid_input_is_rejected_with_node_errors(comfy: ComfyClient) -> None:
    with pytest.raises(PromptRejected) as caught:
        comfy.post_prompt(echo_prompt(0))
    rejected = caught.value
    assert rejected.status == 400
    assert rejected.error["type"] == "prompt_outputs_failed_validation"
    node = rejected.node_errors["1"]
    assert node["class_type"] == "GptimgHarnessEcho"
    assert node["dependent_outputs"] == ["3"]
    (error,) = node["errors"]
    assert error["type"] == "value_smaller_than_min"
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["received_value"] == 0


def test_unknown_node_type_is_rejected(comfy: ComfyClient) -> None:
    with pytest.raises(PromptRejected, match="NoSuchGptimgNode does not exist") as caught:
        comfy.post_prompt({"1": {"class_type": "NoSuchGptimgNode", "inputs": {}}})
    assert caught.value.error["type"] == "invalid_prompt"
    assert caught.value.node_errors == {}


@pytest.mark.browser
def test_browser_loads_and_runs_ui_workflow(comfy: ComfyClient, tmp_path: Path) -> None:
    require_browser()
    workflow = tmp_path / "harness_echo.json"
    workflow.write_text(json.dumps(echo_workflow_ui(32)))
    screenshot = tmp_path / "harness_echo.png"
    result = run_browser_check(comfy.base_url, workflow, screenshot, queue=True)
    assert result["console_errors"] == []
    assert result["missing_node_types"] == []
    assert result["prompt_error"] is None
    assert result["status"]["status_str"] == "success", result["status"]
    (saved,) = result["outputs"]["3"]["images"]
    assert comfy.view(saved["filename"], saved["subfolder"], saved["type"]).size == (32, 16)
    assert result["ok"]
    assert screenshot.stat().st_size > 0
