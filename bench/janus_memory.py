"""Memory of Janus-Pro-1B / -7B per part and dtype (parameters counted on the meta device from their configs,
no weights needed), and the peak memory while loading a mini random Janus folder: ours (the generation half only)
against transformers' JanusForConditionalGeneration.from_pretrained. README, Janus-Pro, shows the output.

    python bench/janus_memory.py
"""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The Janus-Pro configs as transformers' converter builds them from DeepSeek's config.json (language_config,
# aligner/gen_aligner/gen_head n_embed, SigLIP-L/16 at 384px, VQ-16 with 16384 codes of 8 dims).
RELEASES = {
    "Janus-Pro-1B": dict(hidden=2048, ffn=5632, layers=24, heads=16),
    "Janus-Pro-7B": dict(hidden=4096, ffn=11008, layers=30, heads=32),
}
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def release_config(hidden: int, ffn: int, layers: int, heads: int):
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    text = LlamaConfig(
        vocab_size=102400, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=16384,
    )  # fmt: skip
    vision = JanusVisionConfig(image_size=384, patch_size=16, projection_dim=hidden, depth=2)
    vq = JanusVQVAEConfig(embed_dim=8, num_embeddings=16384, projection_dim=hidden, image_token_embed_dim=hidden)
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq)


def parts(config) -> dict[str, int]:
    """Parameters per part of JanusForConditionalGeneration (built on the meta device)."""
    from transformers import JanusForConditionalGeneration

    with torch.device("meta"):
        m = JanusForConditionalGeneration(config)
    n = {name: sum(p.numel() for p in mod.parameters()) for name, mod in m.model.named_children()}
    n["lm_head (tied to embed_tokens)" if config.tie_word_embeddings else "lm_head"] = m.lm_head.weight.numel()
    return n


def table() -> None:
    gen = ("language_model", "generation_embeddings", "generation_aligner", "generation_head")
    print("| model | part | parameters | fp32 | bf16 / fp16 |\n|---|---|---|---|---|")
    for name, shape in RELEASES.items():
        n = parts(release_config(**shape))
        rows = {
            "load_gpt (LM + generation head/embeddings/aligner)": sum(n[k] for k in gen),
            "load_vq (VQ-16 encoder + decoder)": n["vqmodel"],
            "not loaded: SigLIP encoder + aligner": n["vision_model"] + n["aligner"],
            "everything (transformers' from_pretrained)": sum(v for k, v in n.items() if "tied" not in k),
        }
        for part, count in rows.items():
            gib = {k: count * b / 2**30 for k, b in BYTES.items()}
            print(f"| {name} | {part} | {count / 1e6:,.1f}M | {gib['fp32']:.2f} GiB | {gib['bf16']:.2f} GiB |")


CHILD = """
import sys, torch
from pathlib import Path
sys.path.insert(0, {root!r})
import transformers
from gptimg_core import load_gpt, load_vq
from transformers import JanusForConditionalGeneration
folder = Path({folder!r})
def rss(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1]) * 1024
before = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
if {ours}:
    models = [load_gpt(folder, dtype={dtype}), load_vq(folder)]
else:
    models = [JanusForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype={dtype})]
# safetensors may map the file: touch every page of every weight, as a first forward pass would
for m in models:
    for t in [*m.parameters(), *m.buffers()]:
        float(t.detach().flatten()[::256].float().sum())
print(rss("VmHWM:") - before, rss("VmRSS:") - before)
"""


def peak_rss(folder: Path, ours: bool, dtype: str = "torch.float32") -> tuple[int, int]:
    """(peak, final) growth of the resident memory while loading, in a fresh process (imports done before)."""
    import subprocess

    root = str(Path(__file__).resolve().parents[1])
    code = CHILD.format(root=root, folder=str(folder), ours=ours, dtype=dtype)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak, final = out.strip().splitlines()[-1].split()
    return int(peak), int(final)


def mini_peaks() -> None:
    """A mini Janus with Janus-Pro's proportions (the SigLIP encoder a fifth of the 1B's weights, the real VQ)."""
    from transformers import GenerationConfig, JanusForConditionalGeneration

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mini"
        cfg = release_config(hidden=512, ffn=1408, layers=6, heads=8)
        cfg.text_config.vocab_size = 25600
        cfg.vision_config.num_hidden_layers = 6
        model = JanusForConditionalGeneration(cfg)
        model.generation_config = GenerationConfig(
            bos_token_id=0, pad_token_id=1, generation_kwargs={"boi_token_id": 2}
        )
        model.save_pretrained(folder)
        del model
        gc.collect()
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        for dtype in ("torch.float32", "torch.bfloat16"):
            ours, full = peak_rss(folder, True, dtype), peak_rss(folder, False, dtype)
            print(f"mini Janus ({size / 2**20:.0f} MiB of fp32 safetensors) at {dtype}, resident memory while "
                  f"loading, peak / after (all weights touched): load_gpt + load_vq {ours[0] / 2**20:.0f} / "
                  f"{ours[1] / 2**20:.0f} MiB, JanusForConditionalGeneration.from_pretrained {full[0] / 2**20:.0f} / "
                  f"{full[1] / 2**20:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    table()
    mini_peaks()
