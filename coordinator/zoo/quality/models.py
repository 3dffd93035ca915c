"""The quality zoo's torch modules: a conditional image denoiser and the evaluator.

- `DigitDenoiser` (diffusion): the ε-prediction network of a DDPM over 8 × 8 images
  given a request's condition vector (testbed/quality/conditions.py). It has the zoo
  denoiser's signature (`x`, `t`, `cond` → `eps`), so an edge samples it with the zoo's
  DDIM sampler (testbed/zoo/drivers.py); three sizes share the architecture.
- `QualityEvaluator`: two towers — an image encoder and a condition encoder — whose
  embeddings' cosine, scaled to 0–100, is the score (a CLIPScore analogue); it also
  outputs the image tower's features, the space of the Fréchet distance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from coordinator.zoo.models import TIME_FEATURES, TIME_SCALE, ResidualBlock
from testbed.quality.conditions import CONDITION_SIZE, IMAGE_SHAPE

PIXELS = math.prod(IMAGE_SHAPE)
EMBEDDING = 64
"""Width of the evaluator's joint embedding."""
SCORE_SCALE = 100.0
"""score = SCORE_SCALE · max(cos, 0): the 0–100 axis of CLIPScore."""


class DigitDenoiser(nn.Module):
    """ε-prediction network over 8 × 8 images: (x, t, cond) → eps (FiLM on time and condition)."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        half = TIME_FEATURES // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.freqs: torch.Tensor
        self.register_buffer("freqs", freqs * TIME_SCALE, persistent=False)
        self.time_mlp = nn.Sequential(
            nn.Linear(TIME_FEATURES, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.cond_mlp = nn.Sequential(
            nn.Linear(CONDITION_SIZE, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.inp = nn.Linear(PIXELS, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, film_width=width) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, PIXELS)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        temb = self.time_mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))
        emb = F.silu(temb + self.cond_mlp(cond))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.out_norm(h)).view(-1, *IMAGE_SHAPE)


class QualityEvaluator(nn.Module):
    """(image, cond) → (score, features): score = 100·max(cos(img_emb, cond_emb), 0)."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.img_in = nn.Linear(PIXELS, width)
        self.img_blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.img_norm = nn.LayerNorm(width)
        self.img_proj = nn.Linear(width, EMBEDDING)
        self.cond_tower = nn.Sequential(
            nn.Linear(CONDITION_SIZE, width), nn.SiLU(), nn.Linear(width, EMBEDDING)
        )
        # SigLIP-style logit = scale·cos + bias, used in training only
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        h = self.img_in(image.flatten(1))
        for block in self.img_blocks:
            h = block(h)
        return self.img_norm(h)

    def embeddings(
        self, image: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(unit image embeddings, unit condition embeddings, image features)."""
        features = self.image_features(image)
        img = F.normalize(self.img_proj(features), dim=1)
        txt = F.normalize(self.cond_tower(cond), dim=1)
        return img, txt, features

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img, txt, features = self.embeddings(image, cond)
        cos = (img * txt).sum(dim=1)
        return SCORE_SCALE * torch.clamp(cos, min=0.0), features
