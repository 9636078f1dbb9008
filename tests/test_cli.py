"""The command line on the LlamaGen parity models: convert, info, generate (c2i and t2i), inpaint, errors."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gptimg_core import builtin_path, generate, load_gpt, load_text_encoder, load_vq, to_uint8
from gptimg_core.builtin import BUILTIN_RECOMMENDED
from gptimg_core.cli import _sampling, main
from gptimg_core.settings import LLAMAGEN
from gptimg_core.train.t5_folder import make_t5_folder

from tiny import PARITY, parity_gpt


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    for kind in ("c2i", "t2i"):
        assert (
            main(
                [
                    "convert",
                    str(PARITY / f"gpt_{kind}.pt"),
                    str(d / f"{kind}.safetensors"),
                    "--n-head",
                    "4",
                    "--grid",
                    "4",
                ]
            )
            == 0
        )
    make_t5_folder(d / "t5", ["a", "red", "circle", "on", "blue", "background"], d_model=32)
    return d


def test_info_describes_llamagen_and_converted_files(models, capsys):
    assert main(["info", str(PARITY / "vq.pt")]) == 0
    assert torch.is_grad_enabled()  # main ran without autograd and gave the caller's grad mode back
    vq = json.loads(capsys.readouterr().out)
    assert vq["kind"] == "vq" and vq["config (inferred)"]["ch_mult"] == [1, 1, 2, 2]
    assert main(["info", str(models / "c2i.safetensors")]) == 0
    gpt = json.loads(capsys.readouterr().out)
    assert gpt["kind"] == "gpt" and gpt["config"]["n_head"] == 4 and gpt["config"]["block_size"] == 16


def test_generate_class_and_text(models, tmp_path, capsys):
    vq = str(PARITY / "vq.pt")
    out = tmp_path / "c.png"
    args = ["generate", "--gpt", str(models / "c2i.safetensors"), "--vq", vq, "--class-id", "3", "--out", str(out)]
    assert main(args + ["--batch", "2", "--seed", "5"]) == 0
    a = np.asarray(Image.open(tmp_path / "c-0.png"))
    assert a.shape == (32, 32, 3) and (tmp_path / "c-1.png").exists()
    assert main(args + ["--batch", "2", "--seed", "5"]) == 0
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "c-0.png")))  # same seed, same image
    t2i = ["generate", "--gpt", str(models / "t2i.safetensors"), "--vq", vq, "--text-encoder", str(models / "t5")]
    assert main(t2i + ["--prompt", "a red circle", "--negative-prompt", "blue", "--top-k", "5", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)


def test_generate_keeps_the_likeliest_of_candidates(models, tmp_path):
    from gptimg_core import generate, load_gpt, load_vq
    from gptimg_core.images import to_uint8

    vq = str(PARITY / "vq.pt")
    args = ["generate", "--gpt", str(models / "c2i.safetensors"), "--vq", vq, "--class-id", "3", "--seed", "5"]
    assert main(args + ["--candidates", "4", "--out", str(tmp_path / "four.png")]) == 0
    assert main(args + ["--out", str(tmp_path / "one.png")]) == 0
    four, one = (np.asarray(Image.open(tmp_path / f)) for f in ("four.png", "one.png"))
    gpt = load_gpt(models / "c2i.safetensors")
    want = {
        k: to_uint8(load_vq(vq).decode(generate(gpt, torch.tensor([3]), best_of=k, seed=5)))[0]
        for k in (1, 4)
    }  # fmt: skip
    assert np.array_equal(four, want[4]) and np.array_equal(one, want[1])  # a file's GPT: one draw unless asked
    assert not np.array_equal(four, one)
    with pytest.raises(SystemExit, match=r"--best-of must be >= 1 \(1 = one draw per image\), got 0"):
        main(args + ["--candidates", "0", "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def test_inpaint_from_image_and_mask_files(models, tmp_path):
    vq = str(PARITY / "vq.pt")
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:24] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["inpaint", "--gpt", str(models / "c2i.safetensors"), "--vq", vq, "--class-id", "1"]
    args += [
        "--image",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--out",
        str(tmp_path / "out.png"),
    ]
    assert main(args + ["--candidates", "2"]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (32, 32, 3)
    (tmp_path / "out.png").unlink()
    with pytest.raises(SystemExit, match=r"--particles must be >= 1 \(1 = one fill\), got 0"):
        main(args + ["--candidates", "0"])
    assert not (tmp_path / "out.png").exists()


def test_errors_exit_2_with_a_message(models, tmp_path, capsys):
    vq = str(PARITY / "vq.pt")
    assert main(["generate", "--gpt", str(PARITY / "gpt_c2i.pt"), "--vq", vq, "--class-id", "1", "--out", "x.png"]) == 2
    assert "pass n_head= (CLI: --n-head)" in capsys.readouterr().err
    assert (
        main(["generate", "--gpt", str(models / "c2i.safetensors"), "--vq", vq, "--class-id", "99", "--out", "x.png"])
        == 2
    )
    assert "classes 0..9" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="text-conditional: pass a non-empty --prompt"):
        main(
            [
                "generate",
                "--gpt",
                str(models / "t2i.safetensors"),
                "--vq",
                vq,
                "--text-encoder",
                str(models / "t5"),
                "--out",
                "x.png",
            ]
        )
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(SystemExit, match="the mask is 16x16 but the image is 32x32"):
        main(
            [
                "inpaint",
                "--gpt",
                str(models / "c2i.safetensors"),
                "--vq",
                vq,
                "--class-id",
                "1",
                "--image",
                str(tmp_path / "in.png"),
                "--mask",
                str(tmp_path / "m.png"),
                "--out",
                "x.png",
            ]
        )
    assert main(["convert", str(PARITY / "vq.pt"), str(tmp_path / "vq.pt")]) == 2
    assert "the output must be a .safetensors file" in capsys.readouterr().err


def test_every_model_carries_its_recommendation_and_unset_flags_leave_it():
    assert load_gpt(builtin_path("t2i")).recommended == BUILTIN_RECOMMENDED["t2i"]
    assert load_gpt(builtin_path("c2i")).recommended == BUILTIN_RECOMMENDED["c2i"]
    assert parity_gpt("c2i").recommended == LLAMAGEN["c2i"]  # a LlamaGen file: LlamaGen's published settings
    assert parity_gpt("t2i").recommended.options("sample").cfg_scale == 7.5
    flags = argparse.Namespace(
        cfg=None,
        cfg_interval=None,
        cfg_schedule=None,
        temperature=None,
        top_k=0,
        top_p=None,
        decoding=None,
        window=None,
        seed=4,
    )
    chosen = _sampling(flags)
    assert chosen["top_k"] == 0 and chosen["cfg_scale"] is None and chosen["seed"] == 4  # 0 is a choice, None is not
    opts = BUILTIN_RECOMMENDED["t2i"].options("sample", **{k: v for k, v in chosen.items() if k != "seed"})
    assert (opts.top_k, opts.cfg_scale) == (0, BUILTIN_RECOMMENDED["t2i"].sample.cfg_scale)


def test_the_cli_and_the_python_api_give_the_same_images(tmp_path):
    prompt = "a small red circle in the top left on a blue background"
    out = tmp_path / "x.png"
    assert main(["generate", "--prompt", prompt, "--seed", "3", "--batch", "2", "--out", str(out)]) == 0
    gpt, vq = load_gpt(builtin_path("t2i")), load_vq(builtin_path("vq"))
    te = load_text_encoder(builtin_path("text_encoder"), max_length=gpt.cfg.cls_token_num)
    feats, mask = te.encode([prompt])
    for i in range(2):  # image i of the CLI's batch is the API's batch of one with seed 3 + i
        want = to_uint8(vq.decode(generate(gpt, feats, cond_mask=mask, seed=3 + i)))[0]
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"x-{i}.png").convert("RGB")), want)
