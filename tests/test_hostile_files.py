"""Hostile and damaged files: each gets a clear CheckpointError/TextEncoderError naming the file, and no code
in them ever runs (a sentinel file a pickled payload would write never appears)."""

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gptimg_core import CheckpointError, generate, load_gpt, load_vq, save_model
from gptimg_core.checkpoint import MAX_GRID, read_state_dict
from gptimg_core.text_encoder import TextEncoderError, load_text_encoder
from gptimg_core.train.t5_folder import make_t5_folder

from tiny import PARITY, tiny_gpt


class _WritesSentinel:
    """Unpickling this object would run code that creates `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / "SENTINEL"
    yield path
    assert not path.exists(), "code in a hostile file ran"


@pytest.fixture
def gpt_file(tmp_path) -> Path:
    path = tmp_path / "gpt.safetensors"
    save_model(tiny_gpt("c2i"), path)
    return path


def _rewrite(src: Path, dst: Path, *, tensors=None, meta=None) -> Path:
    """Copy a safetensors file, replacing some tensors and/or metadata entries."""
    sd = load_file(str(src))
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        old_meta = f.metadata() or {}
    sd.update(tensors or {})
    save_file(sd, str(dst), metadata={**old_meta, **(meta or {})})
    return dst


@pytest.mark.parametrize("suffix", [".pt", ".PT", ".pth", ".bin", ".ckpt"])
def test_pickled_code_never_runs(tmp_path, sentinel, suffix):
    evil = tmp_path / f"evil{suffix}"
    with open(evil, "wb") as f:
        pickle.dump({"model": _WritesSentinel(sentinel)}, f)
    with pytest.raises(CheckpointError, match=rf"load_gpt: evil{suffix} could not be read .* weights_only=True"):
        load_gpt(evil)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_vq(evil)


def test_pickled_code_in_a_text_encoder_bin_never_runs(tmp_path, sentinel):
    folder = make_t5_folder(tmp_path / "t5", ["a", "red"], d_model=32)
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"shared.weight": _WritesSentinel(sentinel)}, f)
    with pytest.raises(TextEncoderError, match="load_text_encoder"):
        load_text_encoder(folder)


def test_truncated_and_oversized_safetensors_headers(tmp_path, gpt_file, sentinel):
    data = gpt_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"load_gpt: cut.safetensors is not a readable safetensors file"):
        load_gpt(cut)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")  # claims a 1 TB header
    with pytest.raises(CheckpointError, match=r"load_gpt: huge.safetensors is not a readable safetensors file"):
        load_gpt(huge)
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match=r"short.safetensors is not a readable safetensors file"):
        load_vq(short)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 8) + b"not json")
    with pytest.raises(CheckpointError, match=r"garbage.safetensors is not a readable safetensors file"):
        load_gpt(garbage)


def test_metadata_that_is_not_json_names_the_file(tmp_path, gpt_file):
    bad = _rewrite(gpt_file, tmp_path / "notjson.safetensors", meta={"config": "{not json"})
    with pytest.raises(CheckpointError, match=r"load_gpt: notjson.safetensors: its safetensors metadata 'config'"):
        load_gpt(bad)
    bad = _rewrite(gpt_file, tmp_path / "list.safetensors", meta={"config": "[1, 2]"})
    with pytest.raises(CheckpointError, match=r"list.safetensors: .*expected a JSON object"):
        load_gpt(bad)


def test_lying_block_size_is_bounded_before_any_allocation(tmp_path, gpt_file):
    cfg = json.loads(load_gpt(gpt_file).cfg.to_json())
    # 4096x4096 tokens: the KV cache alone would be hundreds of GB
    lie = _rewrite(gpt_file, tmp_path / "lie.safetensors", meta={"config": json.dumps({**cfg, "block_size": 4096**2})})
    with pytest.raises(
        CheckpointError, match=rf"lie.safetensors: .*4096x4096 token grid.*at most {MAX_GRID}x{MAX_GRID}"
    ):
        load_gpt(lie)
    assert load_gpt(lie, grid=4).cfg.grid == 4  # the fix the message names
    odd = _rewrite(gpt_file, tmp_path / "odd.safetensors", meta={"config": json.dumps({**cfg, "block_size": 15})})
    with pytest.raises(CheckpointError, match=r"odd.safetensors: .*square.*pass the real grid \(grid= / --grid N\)"):
        load_gpt(odd)
    assert load_gpt(odd, grid=4).cfg.block_size == 16
    with pytest.raises(TypeError, match=r"load_gpt: grid must be an integer"):
        load_gpt(gpt_file, grid=4.0)
    with pytest.raises(ValueError, match=rf"load_gpt: grid must be an integer in \[0, {MAX_GRID}\]"):
        load_gpt(gpt_file, grid=100_000)


def test_metadata_sizes_must_agree_with_the_tensors(tmp_path, gpt_file):
    cfg = json.loads(load_gpt(gpt_file).cfg.to_json())
    # a huge width would make GPT(cfg) allocate terabytes before any shape check
    wide = _rewrite(gpt_file, tmp_path / "wide.safetensors", meta={"config": json.dumps({**cfg, "dim": 1 << 20})})
    with pytest.raises(CheckpointError, match=r"wide.safetensors: its metadata config disagrees with its tensors: dim"):
        load_gpt(wide)
    deep = _rewrite(gpt_file, tmp_path / "deep.safetensors", meta={"config": json.dumps({**cfg, "n_layer": 10_000})})
    with pytest.raises(CheckpointError, match=r"deep.safetensors: .*n_layer 10000 \(tensors: 2\)"):
        load_gpt(deep)


def test_lying_freqs_cis_buffer_is_refused(tmp_path):
    sd = dict(tiny_gpt("c2i").state_dict())
    sd["freqs_cis"] = torch.zeros(1 + 15, 4, 2)  # not 1 condition row + a square grid
    torch.save({"model": sd}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd.pt: its freqs_cis buffer has 16 rows.*pass the grid yourself"):
        load_gpt(tmp_path / "odd.pt", n_head=4)
    sd["freqs_cis"] = torch.zeros(1 + 1000**2, 1, 1)  # a 1000x1000 grid
    torch.save({"model": sd}, tmp_path / "big.pt")
    with pytest.raises(CheckpointError, match=rf"big.pt: .*square grid of side 1..{MAX_GRID}"):
        load_gpt(tmp_path / "big.pt", n_head=4)
    assert load_gpt(tmp_path / "big.pt", n_head=4, grid=4).cfg.grid == 4


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, gpt_file, bad):
    w = load_file(str(gpt_file))["layers.1.attention.wo.weight"].clone()
    w[0, 0] = bad
    f = _rewrite(gpt_file, tmp_path / "nan.safetensors", tensors={"layers.1.attention.wo.weight": w})
    with pytest.raises(CheckpointError, match=r"load_gpt: nan.safetensors holds NaN or inf .*layers.1.attention.wo"):
        load_gpt(f)
    vq = torch.load(PARITY / "vq.pt", weights_only=True)
    sd = vq.get("model", vq)
    sd["decoder.conv_out.weight"] = sd["decoder.conv_out.weight"].clone().fill_(bad)
    torch.save({"model": sd}, tmp_path / "vq_nan.pt")
    with pytest.raises(CheckpointError, match=r"load_vq: vq_nan.pt holds NaN or inf .*decoder.conv_out.weight"):
        load_vq(tmp_path / "vq_nan.pt")


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.uint8])
def test_integer_and_bool_weights_are_refused_with_the_key(tmp_path, gpt_file, dtype):
    w = load_file(str(gpt_file))["norm.weight"]
    f = _rewrite(gpt_file, tmp_path / "int.safetensors", tensors={"norm.weight": (w > 0).to(dtype)})
    with pytest.raises(
        CheckpointError, match=rf"int.safetensors holds non-floating-point tensors .*norm.weight \({dtype}\)"
    ):
        load_gpt(f)


def test_non_finite_text_encoder_weights_are_refused(tmp_path):
    folder = make_t5_folder(tmp_path / "t5", ["a", "red"], d_model=32)
    sd = load_file(str(folder / "model.safetensors"))
    key = next(k for k in sd if k.endswith("SelfAttention.q.weight"))
    sd[key][0, 0] = float("nan")
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TextEncoderError, match=rf"load_text_encoder: .*model.safetensors.* NaN or inf .*{key}"):
        load_text_encoder(folder)


def test_symlink_loops_are_named(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(
        CheckpointError, match=r"load_gpt: .*a.safetensors' is a symlink that loops or points at nothing"
    ):
        load_gpt(a)
    with pytest.raises(CheckpointError, match="symlink that loops"):
        read_state_dict(b)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(TextEncoderError, match="load_text_encoder: path .* is not an existing folder"):
        load_text_encoder(loop)


def test_upper_case_suffixes_load(tmp_path, gpt_file):
    upper = tmp_path / "X.SAFETENSORS"
    upper.write_bytes(gpt_file.read_bytes())
    gpt = load_gpt(upper)
    torch.save({"model": gpt.state_dict()}, tmp_path / "X.PT")
    again = load_gpt(tmp_path / "X.PT", n_head=4, grid=4)
    g = torch.Generator
    assert torch.equal(
        generate(gpt, torch.tensor([1]), generator=g().manual_seed(0)),
        generate(again, torch.tensor([1]), generator=g().manual_seed(0)),
    )


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("rope_base", float("nan"), r"rope_base nan, expected a number in \[1, 1e\+09\]"),
        ("norm_eps", 0.0, r"norm_eps 0.0, expected a number"),
        ("rope_base", "10000", r"rope_base '10000'"),
        ("dim", 32.0, r"cannot build the model"),
    ],
)
def test_metadata_scalars_that_would_give_nan_logits_are_refused(tmp_path, gpt_file, field, value, match):
    cfg = json.loads(load_gpt(gpt_file).cfg.to_json())
    f = _rewrite(gpt_file, tmp_path / "m.safetensors", meta={"config": json.dumps({**cfg, field: value})})
    with pytest.raises(CheckpointError, match=r"load_gpt: m.safetensors: .*" + match):
        load_gpt(f)


def test_vq_metadata_that_cannot_build_the_model_is_named(tmp_path):
    vq = load_vq(PARITY / "vq.pt")
    save_model(vq, tmp_path / "vq.safetensors")
    cfg = json.loads(vq.cfg.to_json())
    f = _rewrite(tmp_path / "vq.safetensors", tmp_path / "g.safetensors", meta={"config": json.dumps({**cfg, "norm_groups": 7})})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"load_vq: g.safetensors: its metadata config cannot build the model"):
        load_vq(f)
    f = _rewrite(tmp_path / "vq.safetensors", tmp_path / "c.safetensors", meta={"config": json.dumps({**cfg, "codebook_size": 10**9})})  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"c.safetensors: its metadata config disagrees with its tensors: codebook"
    ):
        load_vq(f)
