"""PatchGAN discriminator and hinge losses: the adversarial half of the VQGAN recipe."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """Conv stack scoring overlapping patches as real or fake (pix2pix's PatchGAN, small)."""

    def __init__(self, ch: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for i in range(1, layers):
            nxt = ch * min(2**i, 8)
            mods += [nn.Conv2d(c, nxt, 4, 2 if i < layers - 1 else 1, 1), nn.GroupNorm(8, nxt), nn.LeakyReLU(0.2)]
            c = nxt
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 1, h, w) patch logits


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def g_hinge(fake: Tensor) -> Tensor:
    return -fake.mean()
