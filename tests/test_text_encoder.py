"""Tests for the T5 text encoder wrapper against a tiny real T5 folder."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, T5EncoderModel

from gptimg_core.builtin.train.t5_folder import make_t5_folder
from gptimg_core.text_encoder import MAX_PROMPT_CHARS, TextEncoderError, left_pad, load_text_encoder

WORDS = [
    "a",
    "small",
    "big",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "in",
    "the",
    "top",
    "bottom",
    "left",
    "right",
    "on",
    "background",
]  # ids 3..18
L = 16


class _NotATensor:
    """A pickled object that torch.load(weights_only=True) must refuse."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_t5_folder(tmp_path_factory.mktemp("t5") / "tiny-t5", WORDS)


@pytest.fixture(scope="module")
def enc(folder: Path):
    return load_text_encoder(folder, max_length=L)


def _copy_without(folder: Path, dst: Path, drop: set[str]) -> Path:
    """Copy `folder` to `dst` leaving out the files named in `drop`."""
    dst.mkdir()
    for f in folder.iterdir():
        if f.name not in drop:
            shutil.copy(f, dst / f.name)
    return dst


def test_folder_layout_like_flan_t5(folder: Path) -> None:
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "t5" and cfg["feed_forward_proj"] == "gated-gelu"
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok("A small RED circle")["input_ids"] == [3, 4, 6, 9, 1]  # lowercased, </s> appended


def test_shapes_and_dtypes(enc) -> None:
    feats, mask = enc.encode(["a red circle", "a big blue square on the left"])
    assert feats.shape == (2, L, 64) and feats.dtype == torch.float32
    assert mask.shape == (2, L) and mask.dtype == torch.bool
    assert (enc.max_length, enc.dim, enc.device) == (L, 64, torch.device("cpu"))
    assert enc.encode("a red circle")[0].shape == (1, L, 64)


def test_mask_is_left_padded_and_pads_are_zero(enc) -> None:
    prompts = ["circle", "a red circle", "a big blue square on the left"]
    feats, mask = enc.encode(prompts)
    for row, p in zip(mask, prompts, strict=True):
        n = len(p.split()) + 1  # + </s>
        assert row.tolist() == [False] * (L - n) + [True] * n
    assert torch.equal(feats[~mask], torch.zeros_like(feats[~mask]))
    assert (feats[mask].abs().sum(-1) > 0).all()


def test_valid_features_equal_transformers(enc, folder: Path) -> None:
    prompts = ["a red circle", "a big blue square on the left", "green"]
    feats, _ = enc.encode(prompts)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = T5EncoderModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tok(prompts, padding="max_length", truncation=True, max_length=L, return_tensors="pt")
    with torch.no_grad():
        h = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    for i, n in enumerate(batch["attention_mask"].sum(1).tolist()):
        torch.testing.assert_close(feats[i, L - n :], h[i, :n], atol=1e-6, rtol=0)


def test_batch_rows_equal_single_prompts(enc) -> None:
    prompts = ["a red circle", "a big blue square on the left", "the green background"]
    feats, mask = enc.encode(prompts)
    for i, p in enumerate(prompts):
        f1, m1 = enc.encode(p)
        assert torch.equal(m1[0], mask[i])
        torch.testing.assert_close(f1[0], feats[i], atol=1e-6, rtol=0)


def test_truncation_fills_the_row(enc) -> None:
    long = " ".join(["red circle"] * 20)
    _, mask = enc.encode([long, "a"])
    assert mask[0].all() and mask[1].sum() == 2
    assert enc.tokenizer(long, truncation=True, max_length=L)["input_ids"][-1] == 1  # </s> kept last


def test_unknown_words_map_to_unk(enc) -> None:
    assert enc.tokenizer("a zebra, on a unicorn")["input_ids"] == [3, 2, 2, 17, 3, 2, 1]
    feats, mask = enc.encode("a zebra, on a unicorn")
    assert mask.sum() == 7 and torch.isfinite(feats).all()


def test_left_pad_rotates_rows() -> None:
    f = torch.arange(1.0, 5.0).view(1, 4, 1).repeat(2, 1, 1)  # (2, 4, 1)
    m = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out, om = left_pad(f, m)
    assert out[:, :, 0].tolist() == [[0.0, 0.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]]
    assert om.tolist() == [[False, False, True, True], [True] * 4]


def test_loads_offline_without_network(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("load_text_encoder tried to open a network connection")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    feats, mask = load_text_encoder(folder, max_length=8).encode("a red circle")
    assert feats.shape == (1, 8, 64) and mask.sum() == 4


def test_bin_weights_and_bf16(folder: Path, tmp_path: Path) -> None:
    dst = _copy_without(folder, tmp_path / "bin", {"model.safetensors"})
    torch.save(load_file(folder / "model.safetensors"), dst / "pytorch_model.bin")
    ref, _ = load_text_encoder(folder, max_length=L).encode("a red circle")
    feats, _ = load_text_encoder(dst, max_length=L).encode("a red circle")
    assert torch.equal(feats, ref)
    bf, _ = load_text_encoder(folder, max_length=L, dtype=torch.bfloat16).encode("a red circle")
    assert bf.dtype == torch.float32


def test_pickled_objects_in_bin_are_refused(folder: Path, tmp_path: Path) -> None:
    dst = _copy_without(folder, tmp_path / "evil", {"model.safetensors"})
    sd: dict = dict(load_file(folder / "model.safetensors"))
    sd["extra"] = _NotATensor()
    torch.save(sd, dst / "pytorch_model.bin")
    with pytest.raises(TextEncoderError, match=r"refusing to unpickle"):
        load_text_encoder(dst)


def test_make_t5_folder_is_seeded(folder: Path, tmp_path: Path) -> None:
    again = load_file(make_t5_folder(tmp_path / "again", WORDS) / "model.safetensors")
    other = load_file(make_t5_folder(tmp_path / "other", WORDS, seed=1) / "model.safetensors")
    ref = load_file(folder / "model.safetensors")
    assert all(torch.equal(ref[k], again[k]) for k in ref)
    assert not torch.equal(ref["shared.weight"], other["shared.weight"])
    with pytest.raises(ValueError, match=r"words\[1\] = 'top left' is not a single token"):
        make_t5_folder(tmp_path / "bad", ["a", "top left"])


def test_folder_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(TextEncoderError, match=r"load_text_encoder: path .*nope.* is not an existing folder"):
        load_text_encoder(tmp_path / "nope")
    no_tok = _copy_without(folder, tmp_path / "no_tok", {"tokenizer.json"})
    with pytest.raises(TextEncoderError, match=r"load_text_encoder: .*no_tok.* has no tokenizer files"):
        load_text_encoder(no_tok)
    no_cfg = _copy_without(folder, tmp_path / "no_cfg", {"config.json"})
    with pytest.raises(TextEncoderError, match=r"no_cfg.* has no config.json"):
        load_text_encoder(no_cfg)
    no_w = _copy_without(folder, tmp_path / "no_w", {"model.safetensors"})
    with pytest.raises(TextEncoderError, match=r"no_w.* has no weights"):
        load_text_encoder(no_w)
    llama = _copy_without(folder, tmp_path / "llama", set())
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(TextEncoderError, match=r"has model_type 'llama', expected 't5'"):
        load_text_encoder(llama)
    wrong = _copy_without(folder, tmp_path / "wrong", set())
    cfg = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**cfg, "num_layers": 3}))
    with pytest.raises(TextEncoderError, match=r"do not match its config.json \(missing \['encoder.block.2"):
        load_text_encoder(wrong)
    with pytest.raises(TextEncoderError, match=r"max_length must be a positive int"):
        load_text_encoder(folder, max_length=0)


def test_encode_rejects_bad_prompts(enc) -> None:
    with pytest.raises(TextEncoderError, match=r"TextEncoder.encode: prompts is empty"):
        enc.encode([])
    with pytest.raises(TypeError, match=r"TextEncoder.encode: prompts\[1\] must be a str, got NoneType"):
        enc.encode(["a", None])
    with pytest.raises(TypeError, match=r"TextEncoder.encode: prompts must be a str or a sequence of str, got int"):
        enc.encode(5)


def test_mis_shaped_weights_are_refused(folder: Path, tmp_path: Path) -> None:
    wrong = _copy_without(folder, tmp_path / "wrong_ff", set())
    cfg = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**cfg, "d_ff": 256}))
    with pytest.raises(TextEncoderError, match=r"wrong_ff.* do not fit its config.json"):
        load_text_encoder(wrong)


def test_full_encoder_decoder_bin_checkpoint_loads(folder: Path, tmp_path: Path) -> None:
    # flan-t5-xl ships a whole T5ForConditionalGeneration as pytorch_model*.bin: decoder.* and lm_head are skipped.
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config.from_pretrained(folder, is_encoder_decoder=True, use_cache=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        full = T5ForConditionalGeneration(cfg).eval()
    dst = _copy_without(folder, tmp_path / "full", {"model.safetensors"})
    torch.save({k: v.contiguous() for k, v in full.state_dict().items()}, dst / "pytorch_model.bin")
    enc = load_text_encoder(dst, max_length=L)
    assert torch.equal(enc.model.shared.weight, full.shared.weight)
    feats, mask = enc.encode("a red circle")
    batch = enc.tokenizer("a red circle", padding="max_length", max_length=L, return_tensors="pt")  # (1, L)
    with torch.no_grad():
        h = full.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(feats[0, mask[0]], h[0, :4], atol=1e-6, rtol=0)  # 3 words + </s>


def test_long_prompts_are_truncated_with_a_warning_saying_how_many(enc, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="gptimg_core.text_encoder"):
        enc.encode(["red circle"])
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="gptimg_core.text_encoder"):
        feats, mask = enc.encode(["red circle", " ".join(["red"] * 20)])
    assert mask[1].all()
    (rec,) = caplog.records
    assert rec.message.endswith("reads max_length=16 tokens; prompt 1 has 21 (with </s>): the last 5 dropped")


def test_megabyte_prompts_and_lone_surrogates_are_refused(enc) -> None:
    with pytest.raises(
        TextEncoderError, match=rf"prompts\[0\] has 1,000,000 characters; the limit is {MAX_PROMPT_CHARS:,}"
    ):
        enc.encode("a" * 1_000_000)
    with pytest.raises(
        TextEncoderError, match=r"prompts\[1\] is not valid text: surrogates not allowed at character 4"
    ):
        enc.encode(["red", "red \ud800 circle"])


def test_load_text_encoder_none_is_named() -> None:
    with pytest.raises(TextEncoderError, match=r"load_text_encoder: path must be a folder path .*got NoneType"):
        load_text_encoder(None)


def test_for_model_sizes_to_the_model_and_refuses_other_widths(enc) -> None:
    from gptimg_core import builtin_path, load_gpt

    from tiny import tiny_gpt

    t2i, c2i = load_gpt(builtin_path("t2i")), load_gpt(builtin_path("c2i"))
    own = load_text_encoder(builtin_path("text_encoder"), max_length=3)
    sized = own.for_model(t2i, "Encode Prompt")
    assert sized.max_length == t2i.cfg.cls_token_num and sized.model is own.model
    assert sized.encode(["a red circle"])[0].shape == (1, t2i.cfg.cls_token_num, t2i.cfg.caption_dim)
    narrow = tiny_gpt("t2i")  # takes 16-dim captions
    assert enc.dim != narrow.cfg.caption_dim
    with pytest.raises(TextEncoderError, match=f"Encode Prompt: this T5 encoder gives {enc.dim}-dim features but"):
        enc.for_model(narrow, "Encode Prompt")
    with pytest.raises(TextEncoderError, match="does not take T5 features"):
        own.for_model(c2i, "Encode Prompt")
