"""DeepSeek's Janus-Pro (Hugging Face transformers format) as a model family: a TokenModel over transformers'
Janus layers, its VQ and its prompt encoder. load_gpt / load_vq / load_text_encoder dispatch here for a
folder whose config.json says model_type "janus"."""

from .folder import JanusFolderError, is_janus_folder
from .load import load_janus_model, load_janus_prompt_encoder, load_janus_vq
from .model import JanusModel, JanusState
from .prompt import JanusPromptEncoder
from .vq import JanusVQ

__all__ = [
    "JanusFolderError", "JanusModel", "JanusPromptEncoder", "JanusState", "JanusVQ", "is_janus_folder",
    "load_janus_model", "load_janus_prompt_encoder", "load_janus_vq",
]  # fmt: skip
