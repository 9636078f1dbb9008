"""The registered node definitions, as ComfyUI's /object_info would serve them, and the model folders."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

SPEC = {  # node id: (display name, category, required inputs, optional inputs, output types)
    "GPTImgLoadModel": ("Load GPT Image Model", "loaders", ["ckpt_name", "dtype", "n_head", "grid"], ["compile"], ["GPTIMG_MODEL"]),
    "GPTImgLoadVQ": ("Load VQ Tokenizer", "loaders", ["vq_name"], ["dtype"], ["GPTIMG_VQ"]),
    "GPTImgLoadTextEncoder": ("Load Text Encoder", "loaders", ["encoder_name"], [], ["GPTIMG_TEXT_ENCODER"]),
    "GPTImgEncodePrompt": (
        "Encode Prompt", "conditioning", ["text_encoder", "model", "prompt"], ["negative_prompt"], ["GPTIMG_COND"],
    ),
    "GPTImgClassLabel": ("Class Label", "conditioning", ["model", "class"], [], ["GPTIMG_COND"]),
    "GPTImgSampler": (
        "Autoregressive Sampler",
        "sampling",
        ["model", "positive", "seed", "batch_size", "cfg", "cfg_interval", "cfg_schedule", "temperature", "top_k",
         "top_p"],
        ["negative", "vq", "candidates", "decoding", "window"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgVQEncode": ("VQ Encode", "vq", ["vq", "image", "fit"], [], ["GPTIMG_TOKENS"]),
    "GPTImgVQDecode": ("VQ Decode", "vq", ["vq", "tokens"], [], ["IMAGE"]),
    "GPTImgTokenInpaint": (
        "Token Inpaint",
        "editing",
        ["model", "tokens", "mask", "positive", "seed", "cfg", "temperature", "top_k", "top_p", "mask_mode",
         "threshold", "grow", "candidates", "passes"],
        ["negative", "vq", "decoding", "window"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgOutpaint": (
        "Outpaint / Extend Canvas",
        "editing",
        ["model", "tokens", "positive", "top", "left", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative", "vq", "decoding", "window"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgVariations": (
        "Variations",
        "editing",
        ["model", "tokens", "positive", "keep_rows", "batch_size", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative", "vq", "decoding", "window"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgImg2Img": (
        "Token img2img",
        "editing",
        ["model", "tokens", "positive", "strength", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative", "vq", "decoding", "window"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgTokenMaskPreview": (
        "Token Mask Preview", "editing", ["image", "mask", "vq", "mask_mode", "threshold", "grow"], [], ["IMAGE"],
    ),
}  # fmt: skip


def info(comfy, node_id: str) -> dict:
    """What /object_info serves for a node (V1 view of the V3 schema), JSON round-tripped."""
    return json.loads(json.dumps(comfy.node(node_id).GET_NODE_INFO_V1()))


def test_all_nodes_are_registered_with_the_spec_names(comfy):
    ours = {k for k in comfy.nodes.NODE_CLASS_MAPPINGS if k.startswith("GPTImg")}
    assert ours == set(SPEC)
    for node_id, (display, category, *_rest) in SPEC.items():
        i = info(comfy, node_id)
        assert i["display_name"] == display
        assert comfy.nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] == display
        assert i["category"] == f"gptimg/{category}"
        assert i["python_module"] == "custom_nodes.gptimg"
        assert i["description"]


@pytest.mark.parametrize("node_id", sorted(SPEC))
def test_inputs_outputs_and_tooltips(comfy, node_id):
    _, _, required, optional, outputs = SPEC[node_id]
    i = info(comfy, node_id)
    assert i["input_order"]["required"] == required
    assert i["input_order"].get("optional", []) == optional
    assert i["output"] == outputs
    for section in ("required", "optional"):
        for name, (kind, options) in i["input"].get(section, {}).items():
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            if kind == "FLOAT":
                assert options.get("step"), f"{node_id}.{name}: FLOAT without step is rounded by the front end"
            if name == "seed":
                assert options["control_after_generate"] is True and options["max"] == 2**64 - 1
    assert all(i["output_tooltips"]), f"{node_id} has an output without tooltip"


def test_every_node_has_search_aliases_passed_where_comfyui_takes_them(comfy, monkeypatch):
    adapter = importlib.import_module(f"{comfy.pack.__name__}.nodes.comfy_adapter")
    assert set(adapter.SEARCH_ALIASES) == set(SPEC)
    assert all(adapter.SEARCH_ALIASES[n] for n in SPEC)
    # 0.3.75's io.Schema has no such field; later ComfyUIs get the aliases through adapter.schema
    assert adapter.TAKES_SEARCH_ALIASES == ("search_aliases" in comfy.io.Schema.__dataclass_fields__)
    for node_id in SPEC:
        schema = comfy.node(node_id).define_schema()
        assert getattr(schema, "search_aliases", None) == (
            adapter.SEARCH_ALIASES[node_id] if adapter.TAKES_SEARCH_ALIASES else None
        ), f"{node_id}: build its schema with comfy_adapter.schema"

    @dataclasses.dataclass
    class NewerSchema:
        node_id: str
        display_name: str = ""
        search_aliases: list[str] = dataclasses.field(default_factory=list)

    monkeypatch.setattr(adapter, "io", types.SimpleNamespace(Schema=NewerSchema))
    monkeypatch.setattr(adapter, "TAKES_SEARCH_ALIASES", True)
    made = adapter.schema("GPTImgTokenInpaint", display_name="Token Inpaint")
    assert "inpaint" in made.search_aliases and made.display_name == "Token Inpaint"


def test_loader_choices_offer_the_builtin_first(comfy):
    req = lambda n: info(comfy, n)["input"]["required"]  # noqa: E731
    assert req("GPTImgLoadModel")["ckpt_name"][1]["options"][:2] == ["builtin t2i", "builtin c2i"]
    assert req("GPTImgLoadModel")["dtype"][1]["options"] == ["auto", "fp32", "fp16", "bf16", "int8"]
    assert req("GPTImgLoadVQ")["vq_name"][1]["options"][0] == "builtin"
    assert req("GPTImgLoadTextEncoder")["encoder_name"][1]["options"][0] == "builtin"


def test_model_folders_are_registered_and_listed(comfy, tmp_path):
    fp = comfy.folder_paths
    assert {"gptimg", "gptimg_vq"} <= set(fp.folder_names_and_paths)
    assert fp.get_folder_paths("gptimg")[0] == str(Path(fp.models_dir) / "gptimg")
    gpt_dir, te_dir = tmp_path / "gpt", tmp_path / "te"
    (gpt_dir / "sub").mkdir(parents=True)
    for name in ("a.pt", "sub/b.safetensors", "notes.txt"):
        (gpt_dir / name).write_bytes(b"")
    t5 = gpt_dir / "flan-t5-xl"  # a T5 folder kept next to the GPTs: offered as a text encoder, not a GPT
    t5.mkdir()
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (t5 / "model.safetensors").write_bytes(b"")
    (te_dir / "my-t5").mkdir(parents=True)
    (te_dir / "my-t5" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (te_dir / "clip-l").mkdir()
    (te_dir / "clip-l" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    fp.add_model_folder_path("gptimg", str(gpt_dir))
    fp.add_model_folder_path("text_encoders", str(te_dir))
    try:
        models = info(comfy, "GPTImgLoadModel")["input"]["required"]["ckpt_name"][1]["options"]
        encoders = info(comfy, "GPTImgLoadTextEncoder")["input"]["required"]["encoder_name"][1]["options"]
        assert {"a.pt", "sub/b.safetensors"} <= set(models)
        assert not any("flan-t5-xl" in m or m.endswith(".txt") for m in models)
        assert {"my-t5", "flan-t5-xl"} <= set(encoders) and "clip-l" not in encoders
    finally:
        fp.folder_names_and_paths["gptimg"][0].remove(str(gpt_dir))
        fp.folder_names_and_paths["text_encoders"][0].remove(str(te_dir))


def test_importing_the_pack_does_no_heavy_work():
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('gptimg_pack', {str(REPO / '__init__.py')!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "assert m.WEB_DIRECTORY == './web' and callable(m.comfy_entrypoint); "
        "heavy = [n for n in ('torch', 'transformers', 'comfy', 'gptimg_pack.nodes') if n in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_run_under_comfy_model_management(comfy, loaded):
    """Loading goes through ComfyUI (ModelPatcher + load_models_gpu): listed as loaded, on --cpu's device,
    and usable again after ComfyUI unloads everything."""
    model, vq = loaded["t2i"], loaded["vq"]
    (cond,), _ = comfy.run("GPTImgEncodePrompt", text_encoder=loaded["te"], model=model, prompt="a red circle")
    settings = dict(seed=3, batch_size=1, cfg=4.0, cfg_interval=-1, cfg_schedule="constant", temperature=1.0)
    (first,), _ = comfy.run("GPTImgSampler", model=model, positive=cond, vq=vq, top_k=0, top_p=1.0, **settings)
    patchers = [m.model for m in comfy.mm.current_loaded_models]
    assert model.managed.patcher in patchers and vq.managed.patcher in patchers
    assert model.managed.patcher.load_device == torch.device("cpu") == comfy.mm.get_torch_device()
    comfy.mm.unload_all_models()
    assert model.managed.patcher not in [m.model for m in comfy.mm.current_loaded_models]
    (again,), _ = comfy.run("GPTImgSampler", model=model, positive=cond, vq=vq, top_k=0, top_p=1.0, **settings)
    assert torch.equal(first.codes, again.codes)


def test_sampling_widgets_default_to_the_models_recommendation(comfy):
    """A new node's sampling widgets stand at -1, the loaded model's recommended value, and say so; the
    two meanings of `candidates` (kept under that name for saved workflows) show as best_of and particles."""
    for node_id in ("GPTImgSampler", "GPTImgTokenInpaint", "GPTImgOutpaint", "GPTImgVariations", "GPTImgImg2Img"):
        inputs = info(comfy, node_id)["input"]["required"]
        for name in ("cfg", "temperature", "top_k", "top_p"):
            assert inputs[name][1]["default"] == -1 == inputs[name][1]["min"], (node_id, name)
            assert "-1 = the model's recommended value" in inputs[name][1]["tooltip"]
    best_of = info(comfy, "GPTImgSampler")["input"]["optional"]["candidates"][1]
    particles = info(comfy, "GPTImgTokenInpaint")["input"]["required"]["candidates"][1]
    assert (best_of["display_name"], particles["display_name"]) == ("best_of", "particles")
    assert best_of["default"] == particles["default"] == -1
