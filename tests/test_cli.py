"""The command line on the LlamaGen parity models: convert, info, generate (c2i and t2i), inpaint, errors."""

import argparse
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gptimg_core import builtin_path, compiled, generate, load_gpt, load_text_encoder, load_vq, to_uint8
from gptimg_core.builtin import BUILTIN_RECOMMENDED
from gptimg_core.builtin.train.t5_folder import make_t5_folder
from gptimg_core.cli import _sampling, main
from gptimg_core.settings import LLAMAGEN

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


def test_generate_keeps_the_likeliest_of_candidates(models, tmp_path, capsys):
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
    assert main(args + ["--candidates", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert "error: --best-of must be >= 1 (1 = one draw per image), got 0" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_inpaint_from_image_and_mask_files(models, tmp_path, capsys):
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
    assert main(args + ["--candidates", "0"]) == 2
    assert "error: --particles must be >= 1 (1 = one fill), got 0" in capsys.readouterr().err
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
    assert (
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
        == 2
    )
    assert "error: this GPT is text-conditional: pass a non-empty --prompt" in capsys.readouterr().err
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "m.png")
    assert (
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
        == 2
    )
    assert "error: the mask is 16x16 but the image is 32x32" in capsys.readouterr().err
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


def test_vq_dtype_flag_decodes_in_bf16(tmp_path):
    prompt = "a small red circle in the top left on a blue background"
    for dtype in ("fp32", "bf16"):
        assert (
            main(
                [
                    "generate",
                    "--prompt",
                    prompt,
                    "--seed",
                    "3",
                    "--vq-dtype",
                    dtype,
                    "--out",
                    str(tmp_path / f"{dtype}.png"),
                ]
            )
            == 0
        )
    a, b = (np.asarray(Image.open(tmp_path / f"{d}.png").convert("RGB")).astype(int) for d in ("fp32", "bf16"))
    assert 0 < np.abs(a - b).mean() < 1.0  # the same tokens decoded in another precision: close, not equal


@pytest.mark.slow  # compiles
@pytest.mark.skipif(not compiled.can_compile(), reason="torch.compile needs a C++ compiler on CPU")
def test_compile_flag_draws_the_same_image(tmp_path):
    for flags in ([], ["--compile"]):
        out = tmp_path / f"{len(flags)}.png"
        assert main(["generate", "--class-id", "3", "--seed", "2", *flags, "--out", str(out)]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in (0, 1))
    assert np.array_equal(a, b)


def test_compile_flag_without_a_compiler_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert main(["generate", "--class-id", "3", "--compile", "--out", str(tmp_path / "x.png")]) != 0
    assert "load_gpt: compile needs a C++ compiler" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def torch_threads():
    """torch's thread count, put back after the test (main sets it for the whole process)."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_threads_is_an_explicit_setting_and_the_default_leaves_torchs(torch_threads, capsys):
    vq = str(PARITY / "vq.pt")
    torch.set_num_threads(2)
    assert main(["info", vq]) == 0
    assert torch.get_num_threads() == 2  # no --threads: torch's own setting stays
    assert main(["info", "--threads", "1", vq]) == 0
    assert torch.get_num_threads() == 1
    for bad in ("0", "-2", "1.5", "many"):
        with pytest.raises(SystemExit) as exit_:
            main(["info", "--threads", bad, vq])
        assert exit_.value.code == 2 and "--threads" in capsys.readouterr().err


def _err(capsys) -> str:
    """The one `error:` line a failing command prints last on stderr (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and [e for e in err if e.startswith("error: ")] == err[-1:], err
    return err[-1]


def test_every_failure_is_one_error_line_and_exit_2(models, tmp_path, capsys):
    vq = str(PARITY / "vq.pt")
    c2i = ["--gpt", str(models / "c2i.safetensors"), "--vq", vq, "--class-id", "1"]
    good = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")

    def inpaint(image, mask=good, out=tmp_path / "o.png"):
        return main(["inpaint", *c2i, "--image", str(image), "--mask", str(mask), "--out", str(out)])

    assert inpaint(tmp_path / "text.png") == 2
    assert re.search(r"--image .*text.png' could not be read as an image: .*is not an image file", _err(capsys))
    assert inpaint(tmp_path / "missing.png") == 2
    assert "--image" in _err(capsys)
    assert inpaint(tmp_path / "loop.png") == 2
    assert "could not be read as an image" in _err(capsys)
    assert inpaint(good, mask=tmp_path) == 2  # a folder
    assert "--mask" in _err(capsys)
    assert inpaint(good, out=tmp_path / "nowhere" / "o.png") == 2
    assert "nowhere' does not exist; create it first" in _err(capsys)
    assert main(["generate", *c2i, "--out", str(tmp_path / "nowhere" / "o.png")]) == 2
    assert "does not exist" in _err(capsys)
    assert main(["generate", *c2i, "--out", str(tmp_path)]) == 2
    assert "is a folder" in _err(capsys)
    assert main(["convert", str(PARITY / "vq.pt"), str(tmp_path / "nowhere" / "vq.safetensors")]) == 2
    assert "convert: the output folder" in _err(capsys)
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    assert main(["info", str(tmp_path / "a.safetensors")]) == 2
    assert "symlink that loops" in _err(capsys)
    assert main(["generate", "--gpt", str(tmp_path / "a.safetensors"), "--class-id", "1", "--out", "x.png"]) == 2
    assert "symlink that loops" in _err(capsys)
    assert main(["generate", *c2i, "--cfg", "inf", "--out", str(tmp_path / "o.png")]) == 2
    assert "cfg_scale must be a finite number" in _err(capsys)
    nowhere = ["--gpt", str(tmp_path / "missing.safetensors")]  # sampling flags are checked before any loading
    assert (
        main(["generate", *nowhere, "--class-id", "1", "--temperature", "nan", "--out", str(tmp_path / "o.png")]) == 2
    )
    assert "generate: temperature must be a finite number" in _err(capsys)
    assert not (tmp_path / "o.png").exists()  # no PNG of zeros
    assert main(["generate", *c2i, "--device", "nonsense", "--out", str(tmp_path / "o.png")]) == 2
    assert "--device 'nonsense'" in _err(capsys)


def test_decompression_bombs_are_refused(models, tmp_path, capsys, monkeypatch):
    from PIL import Image as PILImage

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # the 64x64 file stands for a 100k x 100k one
    args = ["inpaint", "--gpt", str(models / "c2i.safetensors"), "--vq", str(PARITY / "vq.pt"), "--class-id", "1"]
    args += ["--image", str(tmp_path / "bomb.png"), "--mask", str(tmp_path / "bomb.png"), "--out", "x.png"]
    assert main(args) == 2
    assert "is too large to open safely" in _err(capsys)


def test_metadata_that_is_not_json_and_non_square_grids_name_the_file(models, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = models / "c2i.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    save_file(load_file(str(src)), str(tmp_path / "bad.safetensors"), metadata={**meta, "config": "{oops"})
    assert main(["info", str(tmp_path / "bad.safetensors")]) == 2
    assert "bad.safetensors" in _err(capsys)
    cfg = json.loads(meta["config"])
    save_file(load_file(str(src)), str(tmp_path / "odd.safetensors"), metadata={**meta, "config": json.dumps({**cfg, "block_size": 15})})  # fmt: skip
    args = ["generate", "--gpt", str(tmp_path / "odd.safetensors"), "--vq", str(PARITY / "vq.pt"), "--class-id", "1"]
    assert main(args + ["--out", str(tmp_path / "o.png")]) == 2
    assert re.search(r"odd.safetensors: .*square.*--grid N", _err(capsys))
    assert main(args + ["--grid", "4", "--out", str(tmp_path / "o.png")]) == 0


def test_class_id_prints_the_name_and_minus_one_is_a_number(tmp_path, capsys):
    from gptimg_core.builtin import builtin_path
    from gptimg_core.labels import stored_class_names

    names = stored_class_names(builtin_path("c2i"))
    out = str(tmp_path / "c.png")
    assert main(["generate", "--class-id", names[3], "--out", out]) == 0
    assert f"class 3 ({names[3]})" in capsys.readouterr().err
    assert main(["generate", "--class-id", "-1", "--out", out]) == 2
    assert re.search(r"error: --class-id: class id -1 is out of range; this model has classes 0\.\.", _err(capsys))
    converted = tmp_path / "c2i.safetensors"
    assert main(["convert", str(builtin_path("c2i")), str(converted)]) == 0
    assert stored_class_names(converted) == names  # convert keeps the class names
