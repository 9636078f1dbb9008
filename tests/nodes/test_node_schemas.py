"""The registered node definitions, as ComfyUI's /object_info would serve them, and the model folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptimg_core.builtin import BUILTIN_INPAINT_SAMPLING, BUILTIN_SAMPLING

REPO = Path(__file__).resolve().parents[2]

SPEC = {  # node id: (display name, category, required inputs, optional inputs, output types)
    "GPTImgLoadModel": ("Load GPT Image Model", "loaders", ["ckpt_name", "dtype", "n_head", "grid"], [], ["GPTIMG_MODEL"]),
    "GPTImgLoadVQ": ("Load VQ Tokenizer", "loaders", ["vq_name"], [], ["GPTIMG_VQ"]),
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
        ["negative", "vq", "candidates"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgVQEncode": ("VQ Encode", "vq", ["vq", "image", "fit"], [], ["GPTIMG_TOKENS"]),
    "GPTImgVQDecode": ("VQ Decode", "vq", ["vq", "tokens"], [], ["IMAGE"]),
    "GPTImgTokenInpaint": (
        "Token Inpaint",
        "editing",
        ["model", "tokens", "mask", "positive", "seed", "cfg", "temperature", "top_k", "top_p", "mask_mode",
         "threshold", "grow", "candidates", "passes"],
        ["negative"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgOutpaint": (
        "Outpaint / Extend Canvas",
        "editing",
        ["model", "tokens", "positive", "top", "left", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgVariations": (
        "Variations",
        "editing",
        ["model", "tokens", "positive", "keep_rows", "batch_size", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative"],
        ["GPTIMG_TOKENS"],
    ),
    "GPTImgImg2Img": (
        "Token img2img",
        "editing",
        ["model", "tokens", "positive", "strength", "seed", "cfg", "temperature", "top_k", "top_p"],
        ["negative"],
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


def test_sampling_tooltips_name_the_builtin_models_settings(comfy):
    inputs = info(comfy, "GPTImgSampler")["input"]["required"]
    t2i, c2i = BUILTIN_SAMPLING["t2i"], BUILTIN_SAMPLING["c2i"]
    cfg_tip = inputs["cfg"][1]["tooltip"]
    assert inputs["cfg"][1]["default"] == 4.0
    assert f"t2i model draws best at {t2i['cfg_scale']}" in cfg_tip and f"c2i at {c2i['cfg_scale']}" in cfg_tip
    tip = inputs["temperature"][1]["tooltip"]
    assert f"t2i model draws best at {t2i['temperature']}" in tip and f"c2i at {c2i['temperature']}" in tip
    top_k_tip = inputs["top_k"][1]["tooltip"]
    assert f"t2i model draws best at {t2i['top_k']}" in top_k_tip and f"c2i at {c2i['top_k']}" in top_k_tip
    assert "To inpaint" not in tip
    inpaint_tip = info(comfy, "GPTImgTokenInpaint")["input"]["required"]["temperature"][1]["tooltip"]
    assert (
        inpaint_tip.startswith(tip)
        and f"t2i draws best at {BUILTIN_INPAINT_SAMPLING['t2i']['temperature']}" in inpaint_tip
    )
    candidates = info(comfy, "GPTImgSampler")["input"]["optional"]["candidates"][1]
    assert candidates["default"] == 1  # a plain draw unless asked: LlamaGen's files are not slowed down
    assert f"t2i {t2i['candidates']}, c2i {c2i['candidates']}" in candidates["tooltip"]
