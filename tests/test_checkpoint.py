"""Checkpoint reading: LlamaGen wrappers, dropped buffers, inferred configs, strict errors,
safe unpickling, and the safetensors converter."""

import os
import pickle

import pytest
import torch

from gptimg_core import CheckpointError, GPTConfig, VQConfig, VQModel, convert, load_gpt, load_vq, read_state_dict
from gptimg_core.checkpoint import infer_gpt_config, infer_vq_config
from gptimg_core.gpt import GPT

from tiny import PARITY, parity_gpt, parity_ref


def _sd(name):
    return torch.load(PARITY / f"{name}.pt", weights_only=True)["model"]


def _logits(gpt):
    ref = parity_ref("gpt_c2i")
    with torch.no_grad():
        return gpt(ref["prefix"], 0, cond=ref["cond"])


def test_wrappers_ema_preferred_and_buffers_dropped(tmp_path):
    sd = _sd("gpt_c2i")
    noisy = {k: v + 1 for k, v in sd.items()}
    extra = {**sd, "freqs_cis": torch.zeros(17, 8, 2), "layers.0.attention.kv_cache.k_cache": torch.zeros(1)}
    torch.save({"model": noisy, "ema": extra, "optimizer": {}}, tmp_path / "ema.pt")
    torch.save(sd, tmp_path / "bare.pth")
    expected = _logits(parity_gpt("c2i"))
    ema = load_gpt(tmp_path / "ema.pt", n_head=4)
    assert ema.cfg.grid == 4  # read from freqs_cis (1 + 16 rows)
    torch.testing.assert_close(_logits(ema), expected)
    torch.testing.assert_close(_logits(load_gpt(tmp_path / "bare.pth", n_head=4, grid=4)), expected)


def test_config_inferred_from_shapes_including_gqa_and_presets():
    cfg = GPTConfig(
        dim=64,
        n_layer=3,
        n_head=4,
        n_kv_head=2,
        vocab_size=100,
        block_size=9,
        model_type="t2i",
        caption_dim=12,
        cls_token_num=7,
    )
    sd = GPT(cfg).state_dict()
    assert infer_gpt_config(sd, n_head=4, grid=3) == cfg
    preset = GPTConfig(dim=768, n_layer=1, n_head=12)  # no preset has 1 layer
    with torch.device("meta"):
        shapes = GPT(preset).state_dict()
    with pytest.raises(CheckpointError, match=r"cannot tell the number of attention heads of a 768-wide, 1-layer GPT"):
        infer_gpt_config(shapes)
    with torch.device("meta"):
        b = GPT(GPTConfig(dim=768, n_layer=12, n_head=12)).state_dict()  # preset B
    assert infer_gpt_config(b).n_head == 12
    vcfg = VQConfig(
        ch=32, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=2, z_channels=16, codebook_size=50, embed_dim=4
    )
    assert infer_vq_config(VQModel(vcfg).state_dict()) == vcfg


def test_wrong_kind_and_mismatch_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"load_gpt: vq.pt looks like a VQ tokenizer .*not a GPT"):
        load_gpt(PARITY / "vq.pt")
    with pytest.raises(CheckpointError, match=r"load_vq: gpt_t2i.pt looks like a GPT image model .*not a VQ"):
        load_vq(PARITY / "gpt_t2i.pt")
    sd = _sd("gpt_c2i")
    sd["layers.0.attention.extra.weight"] = torch.zeros(2)
    del sd["layers.1.ffn_norm.weight"]
    torch.save({"model": sd}, tmp_path / "broken.pt")
    with pytest.raises(
        CheckpointError,
        match=r"missing \['layers.1.ffn_norm.weight'\], unexpected \['layers.0.attention.extra.weight'\]",
    ):
        load_gpt(tmp_path / "broken.pt", n_head=4)
    with pytest.raises(CheckpointError, match=r"load_gpt: no checkpoint file at"):
        load_gpt(tmp_path / "missing.pt")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CheckpointError, match=r"expected a .safetensors or"):
        load_gpt(tmp_path / "x.txt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_and_truncated_files_are_refused_untouched(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(CheckpointError, match=r"could not be read as a plain-tensor checkpoint with weights_only=True"):
        load_gpt(evil)
    data = (PARITY / "gpt_c2i.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt could not be read"):
        load_gpt(cut, n_head=4)
    assert cut.read_bytes() == data[: len(data) // 2]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors file"):
        load_vq(bad)


@pytest.mark.parametrize("kind", ["gpt_c2i", "gpt_t2i", "vq"])
def test_convert_round_trips_exactly(tmp_path, kind):
    out = tmp_path / f"{kind}.safetensors"
    if kind == "vq":
        convert(PARITY / "vq.pt", out)
        a, b = load_vq(PARITY / "vq.pt"), load_vq(out)
    else:
        convert(PARITY / f"{kind}.pt", out, n_head=4, grid=4)
        a, b = parity_gpt(kind.split("_")[1]), load_gpt(out)  # no n_head/grid needed any more
    assert a.cfg == b.cfg
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    _, meta = read_state_dict(out)
    assert meta["format"] == "gptimg" and meta["kind"] == ("vq" if kind == "vq" else "gpt")


def test_convert_refuses_bad_targets(tmp_path):
    with pytest.raises(CheckpointError, match="convert: the output must be a .safetensors file"):
        convert(PARITY / "vq.pt", tmp_path / "out.pt")


def test_load_gpt_dtype_keeps_norm_and_logits_fp32():
    gpt = load_gpt(PARITY / "gpt_c2i.pt", n_head=4, grid=4, dtype=torch.bfloat16)
    assert gpt.tok_embeddings.weight.dtype == torch.bfloat16
    logits = _logits(gpt)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, _logits(parity_gpt("c2i")), atol=0.15, rtol=0.05)
