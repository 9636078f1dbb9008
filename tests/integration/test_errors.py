"""Bad graphs get clear answers: HTTP 400 naming the node and input at queue time, or an execution
error whose message starts with "<Node display name>: <input>:" and says what to do."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.comfy.server import ComfyClient, PromptRejected
from tests.integration import graphs

pytestmark = pytest.mark.comfy


def rejected(client: ComfyClient, prompt: dict[str, Any]) -> PromptRejected:
    with pytest.raises(PromptRejected) as caught:
        client.post_prompt(prompt)
    assert caught.value.status == 400
    return caught.value


def execution_error(client: ComfyClient, prompt: dict[str, Any]) -> dict[str, Any]:
    """The execution_error message of a prompt that must fail while running."""
    entry = client.wait(client.post_prompt(prompt), timeout=120, check=False)
    assert entry["status"]["status_str"] == "error", "the prompt ran without error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert len(errors) == 1, entry["status"]["messages"]
    return errors[0]


def single_input_error(r: PromptRejected, node_id: str) -> dict[str, Any]:
    assert r.error["type"] == "prompt_outputs_failed_validation", r.body
    assert list(r.node_errors) == [node_id], r.node_errors
    (err,) = r.node_errors[node_id]["errors"]
    return err


# ---- refused at queue time (ComfyUI's validation of our schemas) ------------------------------------


def refused(client: ComfyClient, prompt: dict[str, Any], node_id: str, input_name: str) -> str:
    """The text of the refusal of a bad widget value: at queue time (HTTP 400 naming the input), or
    when the node runs (our "<Node>: <input>: ..." message). ComfyUI 0.3.75 does not check the values
    of V3 combo inputs at queue time (it only knows list-typed V1 combos), so either is accepted."""
    try:
        prompt_id = client.post_prompt(prompt)
    except PromptRejected as r:
        assert r.status == 400 and list(r.node_errors) == [node_id], r.body
        errors = r.node_errors[node_id]["errors"]
        if errors[0]["type"] == "custom_validation_failed":  # repeated once per input validate_inputs names
            msg = node_message(r, node_id)
            assert f": {input_name}: " in msg, msg
            return msg
        (err,) = errors
        assert err["extra_info"]["input_name"] == input_name, err
        return f"{err['message']}: {err['details']}"
    entry = client.wait(prompt_id, timeout=120, check=False)
    (err,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert err["node_id"] == node_id, err
    assert f": {input_name}: " in err["exception_message"], err["exception_message"]
    return err["exception_message"]


def test_unknown_combo_value(gptimg_server: ComfyClient) -> None:
    msg = refused(gptimg_server, graphs.t2i(cfg_schedule="cubic"), "5", "cfg_schedule")
    assert "cubic" in msg and "linear" in msg


def test_missing_checkpoint_file(gptimg_server: ComfyClient, model_dirs: dict) -> None:
    """A shared workflow naming a LlamaGen file this ComfyUI lacks says where the file belongs."""
    msg = refused(gptimg_server, graphs.t2i(ckpt="c2i_L_384.pt"), "1", "ckpt_name")
    assert msg.startswith("Load GPT Image Model: ckpt_name: 'c2i_L_384.pt' is not here"), msg
    assert "ComfyUI/models/gptimg/" in msg and str(model_dirs["gptimg"]) in msg, msg
    assert "refresh" in msg and "wrong_kind_vq.safetensors" in msg, msg  # and what is there


def test_missing_vq_file(gptimg_server: ComfyClient, model_dirs: dict) -> None:
    g = graphs.t2i()
    g["2"]["inputs"]["vq_name"] = "vq_ds16_c2i.pt"
    msg = refused(gptimg_server, g, "2", "vq_name")
    assert msg.startswith("Load VQ Tokenizer: vq_name: 'vq_ds16_c2i.pt' is not here"), msg
    assert "ComfyUI/models/gptimg_vq/" in msg and str(model_dirs["gptimg_vq"]) in msg, msg


def test_missing_text_encoder_folder(gptimg_server: ComfyClient, model_dirs: dict) -> None:
    g = graphs.t2i()
    g["3"]["inputs"]["encoder_name"] = "flan-t5-xl"
    msg = refused(gptimg_server, g, "3", "encoder_name")
    assert msg.startswith("Load Text Encoder: encoder_name: 'flan-t5-xl' is not here"), msg
    assert "ComfyUI/models/text_encoders/" in msg and str(model_dirs["text_encoders"]) in msg, msg
    assert "T5 model folder" in msg, msg


def test_unknown_mask_mode(gptimg_server: ComfyClient) -> None:
    g = graphs.mask_preview(64, 64)
    g["3"]["inputs"]["mask_mode"] = "most"
    msg = refused(gptimg_server, g, "3", "mask_mode")
    assert "most" in msg and "threshold" in msg


def test_out_of_range_number(gptimg_server: ComfyClient) -> None:
    err = single_input_error(rejected(gptimg_server, graphs.t2i(batch_size=0)), "5")
    assert err["type"] == "value_smaller_than_min"
    assert err["extra_info"]["input_name"] == "batch_size"


def test_link_of_the_wrong_type(gptimg_server: ComfyClient) -> None:
    g = graphs.t2i()
    g["5"]["inputs"]["positive"] = ["1", 0]  # a GPTIMG_MODEL where a GPTIMG_COND goes
    err = single_input_error(rejected(gptimg_server, g), "5")
    assert err["type"] == "return_type_mismatch"
    assert err["extra_info"]["input_name"] == "positive"


def test_missing_required_input(gptimg_server: ComfyClient) -> None:
    g = graphs.t2i()
    del g["5"]["inputs"]["positive"]
    err = single_input_error(rejected(gptimg_server, g), "5")
    assert err["type"] == "required_input_missing"
    assert err["extra_info"]["input_name"] == "positive"


# ---- non-finite and out-of-range numbers: refused at queue time with the node's own message -----------
# ComfyUI 0.3.75 lets NaN through every min/max check (NaN < min is False), so each node checks its float
# widgets in validate_inputs. ComfyUI repeats a failed validate_inputs once per input it names, so every
# error of the node must carry the same message.

NAN, INF = float("nan"), float("inf")


def node_message(r: PromptRejected, node_id: str) -> str:
    """The node's one message, from an HTTP 400 whose only failing node is node_id."""
    assert r.status == 400 and r.error["type"] == "prompt_outputs_failed_validation", r.body
    assert list(r.node_errors) == [node_id], r.node_errors
    details = {e["details"].split(" - ", 1)[1] for e in r.node_errors[node_id]["errors"]}
    assert len(details) == 1 and all(
        e["type"] == "custom_validation_failed" for e in r.node_errors[node_id]["errors"]
    ), r.node_errors
    return details.pop()


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("cfg", NAN, "finite"),
        ("cfg", INF, "finite"),
        ("cfg", -INF, "finite"),
        ("cfg", 0.5, "outside 1.0..30.0"),
        ("temperature", INF, "finite"),
        ("temperature", NAN, "finite"),
        ("temperature", -0.5, "outside 0.0..5.0"),
        ("top_p", 2.0, "outside 0.01..1.0"),
        ("top_p", NAN, "finite"),
        ("top_p", 0.0, "outside 0.01..1.0"),
    ],
)
def test_bad_sampler_number_gets_the_nodes_message(gptimg_server: ComfyClient, name: str, value: float, words: str):
    msg = node_message(rejected(gptimg_server, graphs.t2i(**{name: value})), "5")
    assert msg.startswith(f"Autoregressive Sampler: {name}: ") and words in msg, msg


@pytest.mark.parametrize(("name", "value"), [("threshold", NAN), ("threshold", 1.5), ("cfg", INF), ("top_p", NAN)])
def test_bad_inpaint_number_gets_the_nodes_message(gptimg_server: ComfyClient, name: str, value: float) -> None:
    g = graphs.inpaint(64, 64)
    g["13"]["inputs"][name] = value
    msg = node_message(rejected(gptimg_server, g), "13")
    assert msg.startswith(f"Token Inpaint: {name}: "), msg


def test_bad_img2img_strength_gets_the_nodes_message(gptimg_server: ComfyClient) -> None:
    g = graphs.inpaint(64, 64)
    inputs = {k: v for k, v in g["13"]["inputs"].items() if k not in ("mask", "mask_mode", "threshold", "grow")}
    inputs = {k: v for k, v in inputs.items() if k not in ("candidates", "passes")}
    g["13"] = {"class_type": "GPTImgImg2Img", "inputs": {**inputs, "strength": NAN}}
    del g["12"]
    msg = node_message(rejected(gptimg_server, g), "13")
    assert msg.startswith("Token img2img: strength: ") and "finite" in msg, msg


def test_mask_preview_threshold_must_be_finite(gptimg_server: ComfyClient) -> None:
    g = graphs.mask_preview(64, 64)
    g["3"]["inputs"]["threshold"] = INF
    assert node_message(rejected(gptimg_server, g), "3").startswith("Token Mask Preview: threshold: ")


def test_a_good_prompt_runs_after_refused_numbers(gptimg_server: ComfyClient) -> None:
    for bad in (graphs.t2i(cfg=NAN), graphs.t2i(temperature=INF), graphs.t2i(top_p=2.0)):
        rejected(gptimg_server, bad)
    entry = gptimg_server.wait(gptimg_server.post_prompt(graphs.t2i(seed=3)), timeout=120)
    (img,) = entry["outputs"]["7"]["images"]
    assert gptimg_server.view(img["filename"], img["subfolder"], img["type"]).size == (64, 64)


# ---- failed while running, with our message ---------------------------------------------------------


def assert_names(err: dict[str, Any], node_id: str, node_type: str, prefix: str, *also: str) -> None:
    assert err["node_id"] == node_id and err["node_type"] == node_type, err
    msg = err["exception_message"]
    assert msg.startswith(prefix), msg
    for pattern in also:
        assert re.search(pattern, msg), f"{pattern!r} not in {msg!r}"
    assert "Traceback" not in msg


def test_empty_prompt(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.t2i("   "))
    assert_names(err, "4", "GPTImgEncodePrompt", "Encode Prompt: prompt: ", "empty", "describe")


def test_class_id_out_of_range(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.c2i("999"))
    assert_names(err, "4", "GPTImgClassLabel", "Class Label: class: ", "999", r"0\.\.47")


def test_unknown_class_name_suggests_one(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.c2i("red circel"))
    assert_names(err, "4", "GPTImgClassLabel", "Class Label: class: ", "red circel", "did you mean 'red circle'")


def test_class_label_on_a_text_model(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.c2i("red circle", ckpt="builtin t2i"))
    assert_names(err, "4", "GPTImgClassLabel", "Class Label: model: ", "Encode Prompt")


def test_mask_size_mismatch_in_mask_preview(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.mask_preview(64, 32))
    assert_names(err, "3", "GPTImgTokenMaskPreview", "Token Mask Preview: mask: ", "32x32", "64x64")


def test_mask_size_mismatch_in_inpaint(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.inpaint(64, 48))
    assert_names(err, "13", "GPTImgTokenInpaint", "Token Inpaint: mask: ", "48x48", "64x64")


def test_tokens_smaller_than_the_model_grid(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.inpaint(32, 32))
    assert_names(err, "13", "GPTImgTokenInpaint", "Token Inpaint: tokens: ", "4x4", "8x8", "Outpaint")


def test_image_not_a_multiple_of_the_downsample(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.vq_encode(60, "error"))
    assert_names(err, "3", "GPTImgVQEncode", "VQ Encode: image: ", "60x60", "multiple", "fit")


def test_fit_crop_makes_the_image_fit(gptimg_server: ComfyClient) -> None:
    entry = gptimg_server.wait(gptimg_server.post_prompt(graphs.vq_encode(60, "crop")), timeout=60)
    (img,) = entry["outputs"]["5"]["images"]
    assert gptimg_server.view(img["filename"], img["subfolder"], img["type"]).size == (56, 56)


def test_vq_file_in_the_gpt_loader(gptimg_server: ComfyClient) -> None:
    err = execution_error(gptimg_server, graphs.t2i(ckpt="wrong_kind_vq.safetensors"))
    assert_names(err, "1", "GPTImgLoadModel", "Load GPT Image Model: ckpt_name: ", "VQ")


def test_gpt_file_in_the_vq_loader(gptimg_server: ComfyClient) -> None:
    g = graphs.vq_encode(64, "error")
    g["2"]["inputs"]["vq_name"] = "wrong_kind_gpt.safetensors"
    err = execution_error(gptimg_server, g)
    assert_names(err, "2", "GPTImgLoadVQ", "Load VQ Tokenizer: vq_name: ", "GPT")


def test_tokens_larger_than_the_model_grid(gptimg_server: ComfyClient) -> None:
    g = graphs.inpaint(128, 128)
    g["13"] = {
        "class_type": "GPTImgOutpaint",
        "inputs": {
            "model": ["1", 0],
            "tokens": ["11", 0],
            "positive": ["4", 0],
            "top": 0,
            "left": 0,
            **{
                k: v
                for k, v in graphs.sampler_inputs().items()
                if k in ("seed", "cfg", "temperature", "top_k", "top_p")
            },
        },
    }
    err = execution_error(gptimg_server, g)
    assert_names(err, "13", "GPTImgOutpaint", "Outpaint / Extend Canvas: tokens: ", "16x16", "larger", "8x8")


def test_class_condition_into_a_text_model_sampler(gptimg_server: ComfyClient) -> None:
    g = graphs.c2i("red circle")
    g["8"] = {
        "class_type": "GPTImgLoadModel",
        "inputs": {"ckpt_name": "builtin t2i", "dtype": "auto", "n_head": 0, "grid": 0},
    }
    g["5"]["inputs"]["model"] = ["8", 0]
    err = execution_error(gptimg_server, g)
    assert_names(err, "5", "GPTImgSampler", "Autoregressive Sampler: positive: ", "c2i", "t2i")


def test_server_still_runs_after_errors(gptimg_server: ComfyClient) -> None:
    execution_error(gptimg_server, graphs.t2i(""))
    entry = gptimg_server.wait(gptimg_server.post_prompt(graphs.t2i(seed=7)), timeout=120)
    (img,) = entry["outputs"]["7"]["images"]
    assert gptimg_server.view(img["filename"], img["subfolder"], img["type"]).size == (64, 64)
