"""Janus' prompt encoder: prompts -> the token ids transformers' JanusProcessor feeds image generation.

JanusProcessor(generation_mode="image") takes the chat template's text (one user turn, with the generation
prompt), appends <begin_of_image> and tokenizes it with the tokenizer's special tokens (BOS), left-padded. The
"encoding" is the ids themselves: the language model embeds them (JanusModel.condition).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .folder import JanusFolderError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BOI_TOKEN = "<begin_of_image>"
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json")


class JanusPromptEncoder:
    """A Janus tokenizer and chat template; `encode` has TextEncoder's surface (prompts -> (cond, mask))."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, chat_template: str, boi_token: str = BOI_TOKEN) -> None:
        self.tokenizer, self.chat_template, self.boi_token = tokenizer, chat_template, boi_token
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> JanusPromptEncoder:
        """Where encode() puts its tensors (the tokenizer itself has no weights)."""
        self.device = torch.device(device)
        return self

    @property
    def weights(self) -> torch.nn.Module:
        """No weights: the model embeds the prompt ids itself (an empty module for a model manager)."""
        return torch.nn.Module()

    def describe(self) -> str:
        """One line on what this encoder is."""
        return f"Janus prompt tokenizer ({len(self.tokenizer)} tokens) and chat template"

    def for_model(self, model: object, where: str) -> JanusPromptEncoder:
        """Self, after checking that `model` is a Janus model (which embeds these prompt ids itself)."""
        from .model import JanusModel

        if not isinstance(model, JanusModel):
            raise ValueError(
                f"{where}: this Janus-Pro prompt encoder does not belong to this model, which is not a Janus-Pro "
                "model; a LlamaGen text-to-image model takes a T5 folder"
            )
        return self

    def text(self, prompt: str) -> str:
        """The prompt as JanusProcessor sees it: one user turn, the generation prompt, then <begin_of_image>."""
        messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        chat = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        return f"{chat}{self.boi_token}"

    @torch.no_grad()
    def encode(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> ids (B, T) int64 and mask (B, T) bool, left-padded to the longest prompt."""
        if isinstance(prompts, str):
            prompts = [prompts]
        texts = list(prompts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError(
                f"JanusPromptEncoder.encode: prompts must be a str or a non-empty list of str, got {prompts!r}"
            )
        batch = self.tokenizer(
            [self.text(t) for t in texts], padding=True, padding_side="left", add_special_tokens=True,
            return_attention_mask=True, return_tensors="pt",
        )  # fmt: skip
        return batch["input_ids"].to(self.device), batch["attention_mask"].bool().to(self.device)


def chat_template(folder: Path, tokenizer: PreTrainedTokenizerBase, where: str) -> str:
    """The folder's chat template: chat_template.jinja, chat_template.json, processor_config.json or the tokenizer's."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in TEMPLATE_FILES[1:]:
        path = folder / name
        if path.is_file():
            template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return template
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        return tokenizer.chat_template
    raise JanusFolderError(
        f"{where}: {str(folder)!r} has no chat template (looked for {list(TEMPLATE_FILES)} and the tokenizer's); "
        "copy chat_template.jinja from the model's Hugging Face folder."
    )


def load_prompt_encoder(folder: Path, boi_token_id: int, pad_token_id: int, where: str) -> JanusPromptEncoder:
    """The tokenizer of a checked Janus folder, refused unless it has Janus' image tokens at the config's ids."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise JanusFolderError(
            f"{where}: the tokenizer in {str(folder)!r} could not be loaded ({str(e)[:200]}); copy tokenizer.json and "
            "tokenizer_config.json from the model's Hugging Face folder."
        ) from e
    vocab = tokenizer.get_vocab()
    if vocab.get(BOI_TOKEN) != boi_token_id or tokenizer.pad_token_id != pad_token_id:
        raise JanusFolderError(
            f"{where}: the tokenizer in {str(folder)!r} lacks Janus' image tokens: {BOI_TOKEN} is "
            f"{vocab.get(BOI_TOKEN)!r} and the pad token {tokenizer.pad_token_id!r}, but generation_config.json says "
            f"{boi_token_id} and {pad_token_id}; copy the tokenizer files of the same Janus-Pro model into the folder."
        )
    return JanusPromptEncoder(tokenizer, chat_template(folder, tokenizer, where))
