"""Tiny random Janus folders in Hugging Face format, built with transformers' own config classes and a byte-level
tokenizer (made with `tokenizers`) that carries Janus' special tokens; no download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
IMAGE, BOI, EOI = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
ROLES = ("<|User|>", "<|Assistant|>")

# transformers' Janus chat template (convert_janus_weights_to_hf.py), as the Janus-Pro folders carry it.
CHAT_TEMPLATE = (
    "{%set seps=['\n\n','<\uff5cend\u2581of\u2581sentence\uff5c>']%}{%set i=0%}{%for message in messages%}"
    "{%if message['role']|lower=='user'%}<|User|>: {%elif message['role']|lower=='assistant'%}<|Assistant|>:"
    "{%if not (loop.last and not add_generation_prompt and message['content'][0]['type']=='text' and "
    "message['content'][0]['text']=='')%} {%endif%}{%else%}{{message['role'].capitalize()}}: {%endif%}"
    "{%for content in message['content']%}{%if content['type']=='image'%}{%if not loop.first%}{{'\n'}}{%endif%}"
    "<image_placeholder>{%if not loop.last%}{{'\n'}}{%endif%}{%elif content['type']=='text'%}"
    "{%set text=content['text']%}{%if loop.first%}{%set text=text.lstrip()%}{%endif%}"
    "{%if loop.last%}{%set text=text.rstrip()%}{%endif%}"
    "{%if not loop.first and message['content'][loop.index0-1]['type']=='text'%}{{' '+text}}{%else%}{{text}}"
    "{%endif%}{%endif%}{%endfor%}{%if not loop.last or add_generation_prompt%}"
    "{%if message['role']|lower=='user'%}{{seps[0]}}{%else%}{{seps[1]}}{%endif%}{%endif%}{%endfor%}"
    "{%if add_generation_prompt%}<|Assistant|>:{%endif%}"
)


@dataclass(frozen=True)
class Shape:
    """One tiny Janus: language model width/heads/layers, image grid side, VQ codebook and base width."""

    hidden: int = 40
    heads: int = 5
    kv_heads: int = 5
    layers: int = 2
    grid: int = 5
    codes: int = 48
    vq_channels: int = 32
    embed_dim: int = 4


SHAPES = {
    "odd": Shape(),  # width 40 (not a multiple of 64), 5 heads, 5x5 grid
    "gqa": Shape(hidden=42, heads=3, kv_heads=1, layers=3, grid=4, codes=40, embed_dim=6),
    "wide": Shape(hidden=72, heads=9, kv_heads=3, layers=1, grid=6, codes=64, vq_channels=64, embed_dim=8),
}


def tokenizer(*, image_tokens: bool = True):
    """A byte-level BPE tokenizer (no merges) with Janus' special tokens; BOS prepended like DeepSeek's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [BOS, EOS, PAD, *ROLES] + ([IMAGE, BOI, EOI] if image_tokens else [])
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    extra = {"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI} if image_tokens else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, extra_special_tokens=extra,
        padding_side="left", model_max_length=4096,
    )  # fmt: skip


def config(shape: Shape, tok):
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    vocab = len(tok) + 3  # a few unused rows, as real checkpoints have
    text = LlamaConfig(
        vocab_size=vocab, hidden_size=shape.hidden, intermediate_size=2 * shape.hidden + 8,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    vision = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=shape.grid * 16, patch_size=16,
        projection_dim=shape.hidden, num_image_tokens=shape.grid**2,
    )  # fmt: skip
    vq = JanusVQVAEConfig(
        embed_dim=shape.embed_dim, num_embeddings=shape.codes, latent_channels=shape.vq_channels,
        base_channels=shape.vq_channels, channel_multiplier=[1, 1, 1, 1, 1], num_res_blocks=1,
        projection_dim=shape.hidden, image_token_embed_dim=shape.hidden,
    )  # fmt: skip
    image_id = tok.convert_tokens_to_ids(IMAGE) if IMAGE in tok.get_vocab() else 0
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq, image_token_id=image_id)


def build(folder: Path, shape: Shape = Shape(), *, seed: int = 0, shard: str | None = None, image_tokens: bool = True):
    """Save a random Janus (weights, config, generation config, tokenizer, chat template) to folder -> the model."""
    from transformers import GenerationConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor

    tok = tokenizer(image_tokens=image_tokens)
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config(shape, tok)).eval()
    with torch.no_grad():  # at init scale the tokens repeat one code: larger weights give varied sequences
        for name, p in model.model.language_model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.mul_(10.0)
        for p in [*model.model.generation_head.parameters(), *model.model.generation_aligner.parameters()]:
            p.mul_(4.0)
    boi = tok.convert_tokens_to_ids(BOI) if image_tokens else 0
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        guidance_scale=5, temperature=1.0, generation_kwargs={"boi_token_id": boi},
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    if image_tokens:
        size = {"height": shape.grid * 16, "width": shape.grid * 16}
        JanusProcessor(JanusImageProcessor(size=size), tok, chat_template=CHAT_TEMPLATE).save_pretrained(folder)
    else:
        tok.save_pretrained(folder)
    return model


def processor(folder: Path):
    """transformers' JanusProcessor of a built folder (the reference for prompt encoding)."""
    from transformers import JanusProcessor

    return JanusProcessor.from_pretrained(folder, local_files_only=True)


def reference_prompt(folder: Path, prompts: list[str]) -> dict:
    """What transformers' documented recipe feeds generate(generation_mode='image'): input_ids and attention_mask."""
    proc = processor(folder)
    texts = [
        proc.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": p}]}], add_generation_prompt=True
        )
        for p in prompts
    ]
    return proc(text=texts, generation_mode="image", padding=True, return_tensors="pt")
