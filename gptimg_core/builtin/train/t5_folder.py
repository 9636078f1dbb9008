"""Write tiny but real T5 encoder folders laid out like flan-t5-xl (config, tokenizer files, model.safetensors)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import (
        PreTrainedTokenizerBase,
        PreTrainedTokenizerFast,
        T5EncoderModel,
    )

logger = logging.getLogger(__name__)

# T5's special ids: <pad>=0, </s>=1, <unk>=2.
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
# "PreTrainedTokenizerFast" (not transformers 5's "TokenizersBackend") also loads on transformers 4.x; and not
# "T5Tokenizer": transformers 5 rebuilds that class as a Unigram model, which would drop our word-level vocab.
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def build_word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words` behaving like T5's: lowercase, <pad>=0, </s>=1 appended, <unk>=2."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if isinstance(words, str) or not isinstance(words, Sequence) or not words:
        raise ValueError(
            f"build_word_tokenizer: words must be a non-empty sequence of str such as ['a', 'red', 'circle'], "
            f"got {words!r}"
        )
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # Punctuation is split into one-character tokens; include e.g. ',' in `words` to give it an id.
    pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")])
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"build_word_tokenizer: words[{i}] must be a str, got {type(w).__name__} ({w!r})")
        norm = normalizer.normalize_str(w)
        pieces = [p for p, _ in pre_tokenizer.pre_tokenize_str(norm)]
        if pieces != [norm] or norm in SPECIAL_TOKENS:
            raise ValueError(
                f"build_word_tokenizer: words[{i}] = {w!r} is not a single token (it splits into {pieces}); "
                "pass words without spaces, and punctuation characters as separate entries."
            )
        vocab.setdefault(norm, len(vocab))

    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def make_t5_folder(
    path: str | os.PathLike,
    words: Sequence[str],
    *,
    d_model: int = 64,
    d_ff: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    d_kv: int = 16,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised T5 encoder over a word-level vocab of `words` to `path`; returns the folder."""
    from transformers import T5Config, T5EncoderModel

    for name, v in (
        ("d_model", d_model),
        ("d_ff", d_ff),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("d_kv", d_kv),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"make_t5_folder: {name} must be a positive int, got {v!r}")
    tokenizer = build_word_tokenizer(words)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_kv,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        feed_forward_proj="gated-gelu",  # as flan-t5 (T5 v1.1)
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    # Seeded without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    return save_t5_folder(path, model, tokenizer)


def save_t5_folder(path: str | os.PathLike, model: T5EncoderModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Write `model` and `tokenizer` as config.json, model.safetensors and tokenizer files; returns the folder."""
    vocab_size = int(model.config.vocab_size)
    if len(tokenizer) > vocab_size:
        raise ValueError(
            f"save_t5_folder: tokenizer has {len(tokenizer)} tokens but model.config.vocab_size is {vocab_size}; "
            "pass the tokenizer the model was built for."
        )
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"save_t5_folder: path {str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # config.json + model.safetensors
    tokenizer.save_pretrained(folder)  # tokenizer.json + tokenizer_config.json
    _finish_tokenizer_files(folder, tokenizer)
    logger.info("wrote T5 encoder folder %s (vocab %d, d_model %d)", folder, vocab_size, model.config.d_model)
    return folder


def _finish_tokenizer_files(folder: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make the tokenizer files match a flan-t5 folder: a portable tokenizer_class and a special_tokens_map.json."""
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = TOKENIZER_CLASS
        cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # transformers 5 no longer writes special_tokens_map.json; flan-t5-xl folders (and transformers 4.x) have one.
    special = {
        k: str(getattr(tokenizer, k))
        for k in ("eos_token", "pad_token", "unk_token")
        if getattr(tokenizer, k) is not None
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
