"""Progress bar with live previews, the sampling-stats websocket event, and interrupts honoured at every token."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

SETTINGS = dict(seed=11, cfg=4.0, cfg_interval=-1, cfg_schedule="constant", temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def cond(comfy, loaded):
    (c,), _ = comfy.run(
        "GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt="a red circle on a blue background"
    )
    return c


def sampler(comfy, loaded, cond, vq=True, batch_size=1, unique_id="7"):
    extra = {"vq": loaded["vq"]} if vq else {}
    (tokens,), _ = comfy.run(
        "GPTImgSampler", unique_id, model=loaded["t2i"], positive=cond, batch_size=batch_size, **extra, **SETTINGS
    )
    return tokens


def test_progress_bar_gets_live_previews(comfy, loaded, cond, progress):
    sampler(comfy, loaded, cond, batch_size=3)
    assert progress.updates[-1][:2] == (64, 64)
    values = [v for v, _, _ in progress.updates]
    assert values == sorted(values) and all(t == 64 for _, t, _ in progress.updates)
    previews = progress.previews()
    assert previews  # up to one per token row of the 8-row grid, as the 10% budget allows
    fmt, image, size = previews[0]
    assert fmt == "JPEG" and isinstance(image, Image.Image) and size == comfy.server.args.preview_size
    assert image.mode == "RGB" and image.width >= 256  # 3 images tiled, crisp 32 px cells


def test_no_vq_no_previews(comfy, loaded, cond, progress):
    sampler(comfy, loaded, cond, vq=False)
    assert progress.updates and not progress.previews() and progress.updates[-1][:2] == (64, 64)


def test_preview_time_is_logged_and_within_budget(comfy, loaded, cond, progress, caplog):
    with caplog.at_level(logging.DEBUG):
        sampler(comfy, loaded, cond, batch_size=2)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("gptimg previews:")]
    stats = record.gptimg_previews
    assert stats["ratio"] <= 0.1 and stats["palette_previews"] + stats["decode_previews"] >= 1


def test_sampling_stats_event(comfy, loaded, cond, recorder, progress):
    sampler(comfy, loaded, cond, unique_id="42")
    events = recorder.named("gptimg.sampling_stats")
    assert events and events[-1]["finished"] is True and events[-1]["done"] == events[-1]["total"] == 64
    for e in events:
        assert set(e) == {"node", "done", "total", "tokens_per_s", "eta_s", "finished", "settings"}
        assert e["settings"].startswith("cfg ")  # the values the run used, in words
        assert e["node"] == "42" and isinstance(e["done"], int) and isinstance(e["tokens_per_s"], float)
        assert e["eta_s"] >= 0
    editing = recorder.events.clear()
    tokens = sampler(comfy, loaded, cond)
    comfy.run("GPTImgImg2Img", "9", model=loaded["t2i"], tokens=tokens, positive=cond, strength=0.5, **_edit())
    editing = recorder.named("gptimg.sampling_stats")
    assert editing[-1]["node"] == "9" and editing[-1]["finished"] is True


def _edit() -> dict:
    return {k: SETTINGS[k] for k in ("seed", "cfg", "temperature", "top_k", "top_p")}


def test_interrupt_stops_at_the_next_token_and_the_model_is_reusable(comfy, loaded, cond, progress, recorder):
    expected = sampler(comfy, loaded, cond, vq=False)
    recorder.events.clear()
    seen = []

    def interrupt_once(value: int, total: int) -> None:
        if not seen:
            seen.append(value)
            comfy.mm.interrupt_current_processing(True)  # what POST /interrupt does

    progress.on_update = interrupt_once
    with pytest.raises(comfy.mm.InterruptProcessingException):
        sampler(comfy, loaded, cond, vq=False)
    last = recorder.named("gptimg.sampling_stats")[-1]
    assert last["finished"] is True and last["done"] == seen[0]  # the very next token's callback raised
    assert not comfy.mm.processing_interrupted()
    progress.on_update = None
    assert torch.equal(sampler(comfy, loaded, cond, vq=False).codes, expected.codes)


def test_interrupt_while_inpainting(comfy, loaded, cond, progress):
    tokens = sampler(comfy, loaded, cond)
    progress.on_update = lambda value, total: comfy.mm.interrupt_current_processing(True)
    with pytest.raises(comfy.mm.InterruptProcessingException):
        comfy.run(
            "GPTImgTokenInpaint", model=loaded["t2i"], tokens=tokens, mask=torch.ones(1, 64, 64), positive=cond,
            mask_mode="any", threshold=0.5, grow=0, candidates=2, passes=2, **_edit(),
        )  # fmt: skip
