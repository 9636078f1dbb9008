"""Small API-format graphs of the built-in model, written out here so each test shows what it submits."""

from __future__ import annotations

from typing import Any

PROMPT = "a red circle on a blue background"


def sampler_inputs(**over: Any) -> dict[str, Any]:
    base = {"seed": 0, "batch_size": 1, "cfg": 4.0, "cfg_interval": -1, "cfg_schedule": "constant"}
    return {**base, "temperature": 1.0, "top_k": 0, "top_p": 1.0, **over}


def t2i(prompt: str = PROMPT, *, ckpt: str = "builtin t2i", grid: int = 0, **sampler: Any) -> dict[str, Any]:
    """Load model/VQ/T5 -> Encode Prompt (4) -> Sampler (5) -> VQ Decode (6) -> PreviewImage (7)."""
    return {
        "1": {
            "class_type": "GPTImgLoadModel",
            "inputs": {"ckpt_name": ckpt, "dtype": "auto", "n_head": 0, "grid": grid},
        },
        "2": {"class_type": "GPTImgLoadVQ", "inputs": {"vq_name": "builtin"}},
        "3": {"class_type": "GPTImgLoadTextEncoder", "inputs": {"encoder_name": "builtin"}},
        "4": {
            "class_type": "GPTImgEncodePrompt",
            "inputs": {"text_encoder": ["3", 0], "model": ["1", 0], "prompt": prompt, "negative_prompt": ""},
        },
        "5": {
            "class_type": "GPTImgSampler",
            "inputs": {"model": ["1", 0], "positive": ["4", 0], "vq": ["2", 0], **sampler_inputs(**sampler)},
        },
        "6": {"class_type": "GPTImgVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["5", 0]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def c2i(label: str = "red circle", *, ckpt: str = "builtin c2i", **sampler: Any) -> dict[str, Any]:
    """Load model/VQ -> Class Label (4) -> Sampler (5) -> VQ Decode (6) -> PreviewImage (7)."""
    return {
        "1": {"class_type": "GPTImgLoadModel", "inputs": {"ckpt_name": ckpt, "dtype": "auto", "n_head": 0, "grid": 0}},
        "2": {"class_type": "GPTImgLoadVQ", "inputs": {"vq_name": "builtin"}},
        "4": {"class_type": "GPTImgClassLabel", "inputs": {"model": ["1", 0], "class": label}},
        "5": {
            "class_type": "GPTImgSampler",
            "inputs": {"model": ["1", 0], "positive": ["4", 0], "vq": ["2", 0], **sampler_inputs(**sampler)},
        },
        "6": {"class_type": "GPTImgVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["5", 0]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def empty_image(size: int, color: int = 0x3050C0) -> dict[str, Any]:
    return {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}


def solid_mask(size: int, value: float = 1.0) -> dict[str, Any]:
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": size, "height": size}}


def mask_preview(image_size: int, mask_size: int) -> dict[str, Any]:
    """Token Mask Preview (3) of a flat image_size image and a mask_size mask."""
    return {
        "1": empty_image(image_size),
        "2": solid_mask(mask_size),
        "9": {"class_type": "GPTImgLoadVQ", "inputs": {"vq_name": "builtin"}},
        "3": {
            "class_type": "GPTImgTokenMaskPreview",
            "inputs": {
                "image": ["1", 0],
                "mask": ["2", 0],
                "vq": ["9", 0],
                "mask_mode": "any",
                "threshold": 0.5,
                "grow": 0,
            },
        },
    }


def inpaint(image_size: int, mask_size: int) -> dict[str, Any]:
    """t2i loaders and prompt, VQ Encode (11) of a flat image_size image, Token Inpaint (13) with a
    mask_size mask, VQ Decode (14) -> PreviewImage (15)."""
    g = t2i()
    for k in ("5", "6", "7"):
        del g[k]
    g.update(
        {
            "10": empty_image(image_size),
            "11": {"class_type": "GPTImgVQEncode", "inputs": {"vq": ["2", 0], "image": ["10", 0], "fit": "error"}},
            "12": solid_mask(mask_size),
            "13": {
                "class_type": "GPTImgTokenInpaint",
                "inputs": {
                    "model": ["1", 0],
                    "tokens": ["11", 0],
                    "mask": ["12", 0],
                    "positive": ["4", 0],
                    "seed": 0,
                    "cfg": 4.0,
                    "temperature": 1.0,
                    "top_k": 0,
                    "top_p": 1.0,
                    "mask_mode": "any",
                    "threshold": 0.5,
                    "grow": 0,
                    "candidates": 1,
                    "passes": 1,
                },
            },
            "14": {"class_type": "GPTImgVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["13", 0]}},
            "15": {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}},
        }
    )
    return g


def vq_encode(size: int, fit: str) -> dict[str, Any]:
    """VQ Encode (3) of a flat size x size image, decoded again (4) -> PreviewImage (5)."""
    return {
        "1": empty_image(size),
        "2": {"class_type": "GPTImgLoadVQ", "inputs": {"vq_name": "builtin"}},
        "3": {"class_type": "GPTImgVQEncode", "inputs": {"vq": ["2", 0], "image": ["1", 0], "fit": fit}},
        "4": {"class_type": "GPTImgVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["3", 0]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
