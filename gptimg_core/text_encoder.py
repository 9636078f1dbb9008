"""T5 text encoder wrapper: prompts -> the left-padded features and mask LlamaGen's t2i GPT is conditioned on."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .checks import all_finite

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, T5EncoderModel

    from .janus import JanusPromptEncoder

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
WEIGHT_PATTERNS = ("model*.safetensors", "pytorch_model*.bin")
# A full T5ForConditionalGeneration checkpoint (flan-t5-xl) also holds these; the encoder never uses them.
IGNORED_WEIGHT_PREFIXES = ("decoder.", "lm_head.")
# Longest prompt taken, in characters: far past any encoder's max_length (LlamaGen's 120 tokens is a few hundred
# characters); a megabyte string would only make the tokenizer work for tokens that are dropped anyway.
MAX_PROMPT_CHARS = 20_000
_FOLDER_HINT = (
    "a local Hugging Face T5 folder such as flan-t5-xl (config.json, tokenizer.json or spiece.model, weights)"
)


class TextEncoderError(ValueError):
    """A text-encoder folder or an encode() argument that cannot be used."""


class TextEncoder:
    """A T5 encoder and its tokenizer; `encode` gives LlamaGen-style left-padded conditioning."""

    def __init__(self, model: T5EncoderModel, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.dim = int(model.config.d_model)

    @property
    def device(self) -> torch.device:
        """Device the encoder weights live on."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype the encoder runs in (features are returned as float32 regardless)."""
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device) -> TextEncoder:
        """Move the encoder to `device` in place and return self."""
        self.model.to(device)
        return self

    @property
    def weights(self) -> torch.nn.Module:
        """The module holding the encoder's weights (what a model manager moves between devices)."""
        return self.model

    def describe(self) -> str:
        """One line on what this encoder is."""
        return f"T5 encoder, {self.dim}-dim features, {self.dtype}"

    def for_model(self, model: object, where: str) -> TextEncoder:
        """This encoder sized for `model` (its caption token count), after checking that the model takes T5
        features of this width (LlamaGen's t2i GPT); a TextEncoderError naming `where` otherwise."""
        cfg = getattr(model, "cfg", None)
        if getattr(model, "kind", None) != "t2i" or not hasattr(cfg, "caption_dim"):
            raise TextEncoderError(
                f"{where}: this T5 encoder does not belong to this model, which does not take T5 features (a "
                f"Janus-Pro model takes the prompt encoder of its own folder)"
            )
        if self.dim != cfg.caption_dim:
            raise TextEncoderError(
                f"{where}: this T5 encoder gives {self.dim}-dim features but the model takes {cfg.caption_dim}; load "
                "the text encoder this model was trained with (flan-t5-xl for LlamaGen's t2i models)"
            )
        return TextEncoder(self.model, self.tokenizer, cfg.cls_token_num)  # same weights, the model's length

    @torch.no_grad()
    def encode(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> features (B, max_length, dim) float32 and mask (B, max_length) bool, valid tokens at the end."""
        return self.embed(prompts)

    def embed(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """As `encode`, with autograd left on (used when training the encoder)."""
        texts = _check_prompts(prompts)
        self._warn_truncated(texts)
        # padding_side is forced: the left-padding below assumes the tokenizer padded on the right.
        batch = self.tokenizer(
            texts,
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            add_special_tokens=True,
            padding_side="right",
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)  # (B, L) int64
        mask = batch["attention_mask"].to(self.device)  # (B, L) int64, 1s then 0s
        h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, C)
        return left_pad(h.float(), mask.bool())

    def _warn_truncated(self, texts: list[str]) -> None:
        """Log one warning for the prompts longer than max_length tokens, saying how many tokens are dropped."""
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
        long = [(i, n) for i, n in enumerate(lengths) if n > self.max_length]
        if long:
            logger.warning(
                "TextEncoder.encode: the encoder reads max_length=%d tokens; %s",
                self.max_length,
                ", ".join(f"prompt {i} has {n} (with </s>): the last {n - self.max_length} dropped" for i, n in long),
            )


def left_pad(features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Right-padded features (B, L, C) and bool mask (B, L) -> valid positions moved to the end, pads zeroed."""
    n = mask.sum(dim=1).tolist()  # valid tokens per row
    # As in LlamaGen's sample_t2i.py: rotate each row so its n valid positions come last, then flip the mask.
    rows = [torch.cat([f[k:], f[:k]]) for f, k in zip(features, n, strict=True)]
    mask = mask.flip(-1)  # (B, L)
    features = torch.stack(rows) * mask[..., None].to(features.dtype)  # (B, L, C)
    return features, mask


def load_text_encoder(
    path: str | os.PathLike,
    *,
    max_length: int = 120,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TextEncoder | JanusPromptEncoder:
    """Load a T5 encoder + tokenizer from a local folder, never downloading (max_length: LlamaGen's 120); for a
    Janus-Pro folder its prompt encoder (max_length and dtype do not apply)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TextEncoderError(
            f"load_text_encoder: path must be a folder path (str or os.PathLike), got {type(path).__name__}; "
            f"expected {_FOLDER_HINT}"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise TextEncoderError(
            f"load_text_encoder: max_length must be a positive int (LlamaGen uses 120), got {max_length!r}"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TextEncoderError(
            f"load_text_encoder: dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}"
        )
    from .janus import is_janus_folder, load_janus_prompt_encoder

    if is_janus_folder(path):  # Janus embeds its prompt ids itself: its "encoder" is the tokenizer + chat template
        return load_janus_prompt_encoder(path).to(device)
    folder = _check_folder(path)

    from transformers import AutoTokenizer, T5EncoderModel

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    try:
        # transformers 5 loads .bin files with torch.load(weights_only=True); we say so explicitly.
        model, info = T5EncoderModel.from_pretrained(
            folder, local_files_only=True, dtype=dtype, weights_only=True, output_loading_info=True
        )
    except pickle.UnpicklingError as e:
        raise TextEncoderError(
            f"load_text_encoder: refusing to unpickle the .bin weights in {str(folder)!r}: they hold more than "
            f"tensors ({str(e)[:200]}). Fix: convert the checkpoint to model.safetensors with a trusted script."
        ) from e
    except RuntimeError as e:
        # transformers raises RuntimeError (after logging a table) when a tensor's shape disagrees with config.json.
        raise TextEncoderError(
            f"load_text_encoder: the weights in {str(folder)!r} do not fit its config.json ({str(e)[:200]}); "
            "the folder mixes files of different models."
        ) from e
    _check_loading_info(folder, info)
    _check_finite_weights(folder, model)
    _check_tokenizer(folder, tokenizer, int(model.config.vocab_size))
    enc = TextEncoder(model, tokenizer, max_length).to(device)
    logger.info(
        "loaded T5 text encoder from %s (dim %d, %d layers, %s, max_length %d) in %.2fs",
        folder,
        enc.dim,
        model.config.num_layers,
        dtype,
        max_length,
        time.perf_counter() - t0,
    )
    return enc


def _check_folder(path: str | os.PathLike) -> Path:
    """Check `path` looks like a T5 encoder folder before handing it to transformers."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise TextEncoderError(
            f"load_text_encoder: path {str(folder)!r} is not an existing folder; expected {_FOLDER_HINT}."
        )
    found = sorted(p.name for p in folder.iterdir())
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise TextEncoderError(
            f"load_text_encoder: {str(folder)!r} has no config.json (found {found}); expected {_FOLDER_HINT}."
        )
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TextEncoderError(f"load_text_encoder: {str(cfg_file)!r} is not valid JSON ({e}).") from e
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type != "t5":
        raise TextEncoderError(
            f"load_text_encoder: {str(cfg_file)!r} has model_type {model_type!r}, expected 't5'; "
            f"point the path at a T5 encoder folder such as flan-t5-xl."
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise TextEncoderError(
            f"load_text_encoder: {str(folder)!r} has no tokenizer files (expected one of {list(TOKENIZER_FILES)}, "
            f"found {found}); copy the tokenizer files of the same model into the folder."
        )
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise TextEncoderError(
            f"load_text_encoder: {str(folder)!r} has no weights (expected files matching {list(WEIGHT_PATTERNS)}, "
            f"found {found}); download the complete model folder."
        )
    return folder


def _check_loading_info(folder: Path, info: dict) -> None:
    """Refuse a checkpoint whose encoder weights are missing, mis-shaped or unknown (no silent random init)."""
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith(IGNORED_WEIGHT_PREFIXES))
    if missing or mismatched or unexpected:
        raise TextEncoderError(
            f"load_text_encoder: the weights in {str(folder)!r} do not match its config.json "
            f"(missing {missing[:5]}, mis-shaped {mismatched[:5]}, unexpected {unexpected[:5]}); "
            "the folder mixes files of different models."
        )


def _check_finite_weights(folder: Path, model: torch.nn.Module) -> None:
    """Refuse NaN/inf weights, naming the folder, its weight files and the first bad tensors."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not all_finite(v)]
    if bad:
        files = sorted(p.name for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern))
        raise TextEncoderError(
            f"load_text_encoder: the weights in {str(folder)!r} ({', '.join(files)}) hold NaN or inf values in "
            f"{len(bad)} tensors: {', '.join(bad[:5])}; the files are corrupt (re-download them)"
        )


def _check_tokenizer(folder: Path, tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> None:
    """Check the tokenizer pads with a real token, appends </s> like T5, and fits the embedding table."""
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise TextEncoderError(
            f"load_text_encoder: the tokenizer in {str(folder)!r} has pad_token_id {tokenizer.pad_token_id} and "
            f"eos_token_id {tokenizer.eos_token_id}; T5 needs both (<pad>=0, </s>=1). Fix its tokenizer_config.json."
        )
    ids = tokenizer("a")["input_ids"]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        raise TextEncoderError(
            f"load_text_encoder: the tokenizer in {str(folder)!r} does not append </s> (it gave {ids} for 'a'); "
            "LlamaGen's conditioning counts </s> as a real token. Fix its post-processor."
        )
    if len(tokenizer) > vocab_size:
        raise TextEncoderError(
            f"load_text_encoder: the tokenizer in {str(folder)!r} has {len(tokenizer)} tokens but config.json "
            f"has vocab_size {vocab_size}; the tokenizer belongs to another model."
        )


def _check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """Normalise `prompts` to a non-empty list of strings."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence):
        raise TypeError(f"TextEncoder.encode: prompts must be a str or a sequence of str, got {type(prompts).__name__}")
    texts = list(prompts)
    if not texts:
        raise TextEncoderError(
            "TextEncoder.encode: prompts is empty; pass at least one prompt (use '' for an empty one)"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"TextEncoder.encode: prompts[{i}] must be a str, got {type(t).__name__} ({t!r:.80})")
        if len(t) > MAX_PROMPT_CHARS:
            raise TextEncoderError(
                f"TextEncoder.encode: prompts[{i}] has {len(t):,} characters; the limit is {MAX_PROMPT_CHARS:,} "
                f"(the encoder keeps only its first max_length tokens anyway)"
            )
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TextEncoderError(
                f"TextEncoder.encode: prompts[{i}] is not valid text: {e.reason} at character {e.start} "
                f"({t[e.start : e.end]!r}); a lone surrogate usually comes from a broken decode of UTF-16"
            ) from e
    return texts
