"""The memory estimate is checked before sampling starts and fails fast with the number and the limit."""

import pytest
import torch

from gptimg_core import MemoryLimitError, generate, inpaint, memory
from gptimg_core.memory import ENV_SWITCH, kv_cache_bytes, sampling_bytes
from gptimg_core.token_model import Condition

from tiny import tiny_gpt


@pytest.mark.parametrize("n_kv_head", [None, 2])
@pytest.mark.parametrize("graphs", [None, True])  # True: the longer cache of fixed-size passes (cuda_graphs.py)
def test_kv_estimate_is_what_the_cache_allocates(n_kv_head, graphs):
    gpt = tiny_gpt("t2i", n_kv_head=n_kv_head)
    gpt.cuda_graphs = graphs
    cache = gpt.start(Condition(torch.zeros(6, 6, 16), None, 6)).cache
    allocated = sum(t.numel() * t.element_size() for t in cache.k + cache.v)
    assert kv_cache_bytes(gpt, 6) == allocated
    assert sampling_bytes(gpt, 3, guided=True) > allocated  # 3 images with CFG: the same 6 rows, and more
    assert kv_cache_bytes(gpt.to(torch.bfloat16), 6) == allocated // 2


def test_a_request_that_cannot_fit_fails_before_sampling(monkeypatch):
    gpt = tiny_gpt("c2i")
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10_000)
    calls = []
    with pytest.raises(MemoryLimitError, match=r"generate: 2 image\(s\) x 3 candidate\(s\) on a 4x4 grid \(12 sequences "
                       r"with CFG\) need about .* GiB, but cpu has 0.00 GiB available.*GPTIMG_MEMORY_CHECK=0"):  # fmt: skip
        generate(gpt, torch.tensor([1, 2]), best_of=3, callback=lambda *a: calls.append(a))
    assert not calls  # nothing was sampled
    codes, keep = torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.bool)
    with pytest.raises(MemoryLimitError, match=r"inpaint: 1 image\(s\) x 8 candidate\(s\)"):
        inpaint(gpt, codes, keep, torch.tensor([1]), particles=8)
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert generate(gpt, torch.tensor([1, 2]), best_of=3).shape == (2, 4, 4)


def test_an_absurd_batch_is_refused_on_any_machine():
    gpt = tiny_gpt("c2i")
    with pytest.raises(MemoryLimitError, match=r"generate: 100000 image\(s\) x 1000000 candidate\(s\)"):
        generate(gpt, torch.ones(100_000, dtype=torch.long), best_of=1_000_000)
