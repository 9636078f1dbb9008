"""gptimg_core: LlamaGen-compatible autoregressive image generation and token editing, without ComfyUI."""

from .builtin import BUILTIN_DIR, builtin_path
from .checkpoint import CheckpointError, convert, detect_kind, load_gpt, load_vq, read_state_dict, save_model
from .config import GPT_PRESETS, GPTConfig, VQConfig
from .editing import (
    img2img_keep,
    inpaint,
    outpaint,
    pixel_mask_to_tokens,
    place_tokens,
    score_known,
    variation_keep,
)
from .generate import generate
from .gpt import GPT
from .images import from_uint8, to_uint8
from .janus import JanusFolderError, JanusModel, JanusPromptEncoder, JanusVQ
from .memory import MemoryLimitError, sampling_bytes
from .onnx_export import export_onnx
from .sampling import SamplingOptions, image_generators
from .text_encoder import TextEncoder, TextEncoderError, load_text_encoder
from .vq import VQModel

__all__ = [
    "BUILTIN_DIR", "GPT", "GPTConfig", "GPT_PRESETS", "CheckpointError", "JanusFolderError", "JanusModel",
    "JanusPromptEncoder", "JanusVQ", "MemoryLimitError", "SamplingOptions", "TextEncoder", "TextEncoderError",
    "VQConfig", "VQModel", "builtin_path", "convert", "detect_kind", "export_onnx", "from_uint8", "generate", "image_generators",
    "img2img_keep", "inpaint", "load_gpt", "load_text_encoder", "load_vq", "outpaint", "pixel_mask_to_tokens",
    "place_tokens", "read_state_dict", "sampling_bytes", "save_model", "score_known", "to_uint8", "variation_keep",
]  # fmt: skip
