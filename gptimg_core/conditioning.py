"""LlamaGen's conditions: checking class ids or caption features against a GPT and building the
[cond; null] rows that CFG runs (`GPT.condition`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .checks import check_finite
from .token_model import Condition

if TYPE_CHECKING:
    from .gpt import GPT


def _as_mask(mask: Tensor | None, shape: tuple[int, int], name: str, where: str) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or tuple(mask.shape) != shape:
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{where}: {name} must be a (B, T) = {shape} tensor of 0/1 or bool, got {got}")
    if mask.dtype != torch.bool:
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{where}: {name} must hold only 0 and 1")
        mask = mask != 0
    if mask.numel() and not bool(mask.any(1).all()):
        rows = (~mask.any(1)).nonzero().flatten().tolist()
        raise ValueError(
            f"{where}: {name} marks no valid token in rows {rows}; every row needs at least one (an encoded "
            f"prompt always has its </s>)"
        )
    return mask


def _check_labels(gpt: GPT, labels: Tensor, name: str, where: str, allow_null: bool) -> Tensor:
    n = gpt.cfg.num_classes
    if not isinstance(labels, Tensor):
        ok = isinstance(labels, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in labels)
        if not ok:
            raise TypeError(
                f"{where}: this is a class-conditional (c2i) model, so {name} must be a 1-D integer tensor of "
                f"class ids (or a list of ints), got {type(labels).__name__} {labels!r:.80}"
            )
        if any(not -(2**62) < x < 2**62 for x in labels):
            raise ValueError(
                f"{where}: {name} holds class ids {list(labels)!r:.80}, but this model has classes 0..{n - 1}"
            )
        labels = torch.tensor(labels, dtype=torch.long)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() != 1:
        raise TypeError(
            f"{where}: this is a class-conditional (c2i) model, so {name} must be a 1-D integer tensor of "
            f"class ids, got {tuple(labels.shape)} {labels.dtype}"
        )
    hi = n + 1 if allow_null else n
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= hi):
        raise ValueError(
            f"{where}: {name} holds class ids {labels.tolist()}, but this model has classes 0..{n - 1}"
            + (f" (and {n}, the null class)" if allow_null else "")
        )
    return labels.long()


def _check_features(gpt: GPT, feats: Tensor, name: str, where: str) -> Tensor:
    cfg = gpt.cfg
    if not isinstance(feats, Tensor) or not feats.is_floating_point() or feats.dim() != 3:
        got = (tuple(feats.shape), feats.dtype) if isinstance(feats, Tensor) else type(feats).__name__
        raise TypeError(
            f"{where}: this is a text-conditional (t2i) model, so {name} must be caption features "
            f"(B, {cfg.cls_token_num}, {cfg.caption_dim}) from a text encoder, got {got}"
        )
    if feats.shape[1] != cfg.cls_token_num or feats.shape[2] != cfg.caption_dim:
        raise ValueError(
            f"{where}: {name} has shape {tuple(feats.shape)}, but the model expects (B, {cfg.cls_token_num}, "
            f"{cfg.caption_dim}); use a text encoder with max_length={cfg.cls_token_num} and "
            f"{cfg.caption_dim}-dim features (the one this model was trained with)"
        )
    check_finite(where, name, feats)
    return feats


def prepare_condition(
    gpt: GPT,
    cond: Tensor,
    cond_mask: Tensor | None,
    uncond: Tensor | None,
    uncond_mask: Tensor | None,
    *,
    guided: bool,
    where: str,
) -> Condition:
    """Check the condition and build the batch: [cond; uncond] when guided, else cond alone. gpt: LlamaGen's
    GPT, or its export on onnxruntime (onnx_backend.OnnxGPT: the same cfg, device and null_condition)."""
    from .gpt import GPT  # gpt.py imports this module's caller; here only to check
    from .onnx_backend import OnnxGPT

    if not isinstance(gpt, (GPT, OnnxGPT)):
        raise TypeError(f"{where}: gpt must be a GPT (load_gpt's result), got {type(gpt).__name__}")
    device = gpt.device
    if gpt.cfg.model_type == "c2i":
        cond = _check_labels(gpt, cond, "cond", where, allow_null=False)
        if cond_mask is not None or uncond_mask is not None:
            raise ValueError(f"{where}: cond_mask/uncond_mask apply to text-conditional models only")
        B = cond.shape[0]
        null = gpt.null_condition.expand(B) if uncond is None else _check_labels(gpt, uncond, "uncond", where, True)
        if null.shape[0] == 1:
            null = null.expand(B)
    else:
        cond = _check_features(gpt, cond, "cond", where)
        B = cond.shape[0]
        cond_mask = _as_mask(cond_mask, (B, cond.shape[1]), "cond_mask", where)
        if uncond is None:
            null = gpt.null_condition.expand(B, -1, -1)
            uncond_mask = cond_mask  # LlamaGen masks both halves with the prompt's mask
        else:
            null = _check_features(gpt, uncond, "uncond", where)
            if null.shape[0] not in (1, B):
                raise ValueError(f"{where}: uncond has batch {null.shape[0]}, expected 1 or {B} (cond's batch)")
            null = null.expand(B, -1, -1)
            uncond_mask = _as_mask(uncond_mask, (null.shape[0], null.shape[1]), "uncond_mask", where)
            if uncond_mask is None and cond_mask is not None:
                uncond_mask = torch.ones_like(cond_mask)
            if cond_mask is None and uncond_mask is not None:
                cond_mask = torch.ones_like(uncond_mask)
    if B == 0:
        raise ValueError(f"{where}: cond is an empty batch")
    if guided and null.shape[0] != B:
        raise ValueError(f"{where}: uncond has batch {null.shape[0]}, expected 1 or {B} (cond's batch)")
    rows = torch.cat([cond.to(device), null.to(device)]) if guided else cond.to(device)
    mask = None
    if gpt.cfg.model_type == "t2i" and cond_mask is not None:
        mask = (torch.cat([cond_mask, uncond_mask]) if guided else cond_mask).to(device)  # (R, T)
    return Condition(rows, mask, B)
