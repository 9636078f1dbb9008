"""The ComfyUI extension: registers the model folders and lists the nodes."""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension, io

from . import comfy_adapter
from .conditioning import ClassLabel, EncodePrompt
from .editing import Img2Img, Outpaint, TokenInpaint, Variations
from .loaders import LoadModel, LoadTextEncoder, LoadVQ
from .mask_preview import TokenMaskPreview
from .sampler import Sampler
from .vq_nodes import VQDecode, VQEncode

NODES: list[type[io.ComfyNode]] = [
    LoadModel,
    LoadVQ,
    LoadTextEncoder,
    EncodePrompt,
    ClassLabel,
    Sampler,
    VQEncode,
    VQDecode,
    TokenInpaint,
    Outpaint,
    Variations,
    Img2Img,
    TokenMaskPreview,
]


class GPTImgExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


def comfy_entrypoint() -> GPTImgExtension:
    comfy_adapter.register_folders()
    return GPTImgExtension()
