"""Janus-Pro's image generator as a TokenModel: transformers' own layers (the Llama language model, the
generation embeddings, aligner and head of `JanusModel`), driven by our decoders over a transformers cache.

Sequence per row: the prompt ids (left-padded, ending with <begin_of_image>), then image tokens, each fed as
generation_aligner(generation_embeddings(token)); the generation head turns the last hidden state into
logits over the VQ codebook. This is what `JanusForConditionalGeneration.generate(generation_mode="image")`
computes, one step at a time; our loop adds rewinds (speculative decoding), kept tokens and previews.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..settings import Recommended
from ..token_model import Condition

if TYPE_CHECKING:
    from transformers import JanusConfig

# The language model's weights, under JanusModel's names ("model." stripped from the file's names). The
# understanding encoder (vision_model, aligner), the VQ (load_vq reads it) and the text head (lm_head) are not.
GENERATION_PREFIXES = (
    "model.language_model.", "model.generation_embeddings.", "model.generation_aligner.", "model.generation_head.",
)  # fmt: skip


PROMPT_ESTIMATE = 256  # prompt tokens assumed by the memory estimate (chat template included)


class JanusModel(nn.Module):
    """The image-generation half of a Janus checkpoint (TokenModel, token_model.py), built from transformers'
    modules with JanusModel's attribute names, so that the file's tensors load by name."""

    kind = "t2i"

    def __init__(self, config: JanusConfig, *, pad_id: int, bos_id: int, boi_id: int, recommended: Recommended) -> None:
        from transformers import AutoModel
        from transformers.models.janus.modeling_janus import JanusVQVAEAlignerMLP, JanusVQVAEHead

        super().__init__()
        vq = config.vq_config
        self.text_config = config.text_config
        self.language_model = AutoModel.from_config(config.text_config)
        self.generation_embeddings = nn.Embedding(vq.num_embeddings, vq.embed_dim)
        self.generation_aligner = JanusVQVAEAlignerMLP(vq)
        self.generation_head = JanusVQVAEHead(vq)
        tokens = int(config.vision_config.num_image_tokens)
        self.grid = int(round(tokens**0.5))
        self.vocab_size = int(vq.num_embeddings)
        self.text_vocab = int(config.text_config.vocab_size)
        self.pad_id, self.bos_id, self.boi_id = pad_id, bos_id, boi_id
        self.recommended = recommended  # from generation_config.json (load.py)

    @property
    def device(self) -> torch.device:
        return self.generation_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.generation_embeddings.weight.dtype

    def describe(self) -> str:
        """One line on what this model is: size, grid, vocabulary, dtype."""
        params = sum(p.numel() for p in self.parameters())
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"Janus-Pro image generator, {params / 1e6:.0f}M parameters (understanding encoder not loaded); "
            f"{self.grid}x{self.grid} token grid, vocabulary {self.vocab_size}; {dtype}"
        )

    def embed_prompt(self, ids: Tensor) -> Tensor:
        """Prompt ids (R, T) -> (R, T, D)."""
        return self.language_model.embed_tokens(ids)

    def embed_image(self, tokens: Tensor) -> Tensor:
        """Image tokens (R, n) -> (R, n, D)."""
        return self.generation_aligner(self.generation_embeddings(tokens))

    def image_logits(self, h: Tensor) -> Tensor:
        """Hidden states (R, n, D) -> fp32 logits (R, n, V) over the codebook."""
        return self.generation_head(h).float()

    def null_prompt(self, ids: Tensor) -> Tensor:
        """transformers' unconditional prompt: every token but BOS and <begin_of_image> replaced by the pad token."""
        keep = (ids == self.bos_id) | (ids == self.boi_id)
        return torch.where(keep, ids, torch.full_like(ids, self.pad_id))

    def condition(
        self,
        cond: Tensor,
        cond_mask: Tensor | None,
        uncond: Tensor | None,
        uncond_mask: Tensor | None,
        *,
        guided: bool,
        where: str,
    ) -> Condition:
        """Prompt ids (B, T) with a left-padding mask; the null branch is uncond (a negative prompt, (1 or B, T'))
        or null_prompt(cond) with cond's mask. Rows of different lengths are left-padded to one length."""
        ids, mask = self._check_prompt(cond, cond_mask, "cond", where)
        B = ids.shape[0]
        if not guided:
            return Condition(ids.to(self.device), mask.to(self.device), B)
        if uncond is None:
            null, null_mask = self.null_prompt(ids), mask
        else:
            null, null_mask = self._check_prompt(uncond, uncond_mask, "uncond", where)
            if null.shape[0] == 1 and B > 1:
                null, null_mask = null.expand(B, -1), null_mask.expand(B, -1)
            if null.shape[0] != B:
                raise ValueError(f"{where}: uncond has batch {null.shape[0]}, expected 1 or {B} (cond's batch)")
        T = max(ids.shape[1], null.shape[1])
        ids, mask = self._left_pad(ids, mask, T)
        null, null_mask = self._left_pad(null, null_mask, T)
        return Condition(torch.cat([ids, null]).to(self.device), torch.cat([mask, null_mask]).to(self.device), B)

    def _left_pad(self, ids: Tensor, mask: Tensor, T: int) -> tuple[Tensor, Tensor]:
        n = T - ids.shape[1]
        if n == 0:
            return ids, mask
        pad = torch.full((ids.shape[0], n), self.pad_id, dtype=ids.dtype, device=ids.device)
        return torch.cat([pad, ids], 1), torch.cat([torch.zeros_like(pad, dtype=torch.bool), mask], 1)

    def _check_prompt(self, ids: Tensor, mask: Tensor | None, name: str, where: str) -> tuple[Tensor, Tensor]:
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.is_floating_point() or ids.shape[1] == 0:
            got = (tuple(ids.shape), ids.dtype) if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(
                f"{where}: this is a Janus model, so {name} must be prompt token ids (B, T) from its prompt encoder "
                f"(load_text_encoder on the Janus folder), got {got}"
            )
        if ids.shape[0] == 0:
            raise ValueError(f"{where}: {name} is an empty batch")
        ids = ids.long()
        if int(ids.min()) < 0 or int(ids.max()) >= self.text_vocab:
            raise ValueError(
                f"{where}: {name} holds ids outside [0, {self.text_vocab}), the language model's vocabulary"
            )
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)
        if not isinstance(mask, Tensor) or mask.shape != ids.shape:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{where}: {name}_mask must be a {tuple(ids.shape)} tensor of 0/1 or bool, got {got}")
        if mask.dtype != torch.bool:
            if not torch.all((mask == 0) | (mask == 1)):
                raise ValueError(f"{where}: {name}_mask must hold only 0 and 1")
            mask = mask != 0
        mask = mask.to(ids.device)
        if bool((mask[:, 1:] < mask[:, :-1]).any()) or not bool(mask[:, -1].all()):
            raise ValueError(f"{where}: {name}_mask must be left-padded (False then True in each row, True at the end)")
        if not bool((ids[:, -1] == self.boi_id).all()):
            raise ValueError(
                f"{where}: every {name} row must end with <begin_of_image> (id {self.boi_id}), got last ids "
                f"{ids[:, -1].tolist()}; encode prompts with this folder's prompt encoder (load_text_encoder)"
            )
        return ids, mask

    def start(self, cond: Condition) -> JanusState:
        return JanusState(self, cond)

    def sampling_bytes(self, rows: int) -> int:
        """The StaticCache of `rows` sequences of a prompt (counted at PROMPT_ESTIMATE tokens) + the grid, and a
        step's fp32 logits."""
        c = self.text_config
        heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        item = self.generation_embeddings.weight.element_size()
        seq = PROMPT_ESTIMATE + self.grid**2
        return c.num_hidden_layers * 2 * rows * heads * seq * head_dim * item + rows * self.vocab_size * 16


class JanusState:
    """A decode state (token_model.DecodeState) on a transformers StaticCache sized prompt + grid**2.

    Static, not dynamic: the cache is allocated once (a DynamicCache concatenates every layer's keys at every
    step), it is the cache transformers' own image generation uses (so the arithmetic is the same), and a
    rewind is `crop`, which only moves the fill mark back: the next update overwrites the stale positions,
    which causality already hides.
    """

    per_row_positions = False  # one fill mark for every row

    def __init__(self, model: JanusModel, cond: Condition) -> None:
        from transformers import StaticCache

        self.model, self.prompt = model, cond.rows
        self.rows, self.T = cond.rows.shape
        N = model.grid**2
        self.cache = StaticCache(config=model.text_config, max_cache_len=self.T + N)
        self.filled = 0  # positions the cache holds (tracked here: reading the cache's own count syncs a GPU)
        mask = cond.mask if cond.mask is not None else torch.ones_like(cond.rows, dtype=torch.bool)
        image = torch.ones(self.rows, N, dtype=torch.long, device=mask.device)
        self.mask = torch.cat([mask.long(), image], 1)  # (R, T + N): 0 on the prompt's padding

    def _run(self, h: Tensor, start: int) -> Tensor:
        """Hidden states (R, n, D) at sequence positions start.. -> the language model's output (R, n, D)."""
        if self.filled > start:
            self.cache.crop(start - self.filled)  # rewind: later positions are overwritten
        elif self.filled < start:
            raise ValueError(f"JanusState: cannot feed position {start - self.T} before {self.filled - self.T} is fed")
        n = h.shape[1]
        pos = torch.arange(start, start + n, device=h.device).unsqueeze(0)  # (1, n)
        out = self.model.language_model(
            inputs_embeds=h, attention_mask=self.mask, position_ids=pos, cache=self.cache, use_cache=True
        )
        self.filled = start + n
        return out.last_hidden_state

    def prefill(self) -> Tensor:
        h = self._run(self.model.embed_prompt(self.prompt), 0)
        return self.model.image_logits(h[:, -1:])[:, 0]  # (R, V)

    def feed(self, tokens: Tensor, t: int, *, last_only: bool = False) -> Tensor:
        h = self._run(self.model.embed_image(tokens), self.T + t)
        return self.model.image_logits(h[:, -1:] if last_only else h)

    def keep_rows(self, n: int) -> None:
        self.cache.reorder_cache(torch.arange(n, device=self.prompt.device))
        self.mask, self.prompt, self.rows = self.mask[:n], self.prompt[:n], n
