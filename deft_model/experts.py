"""The three experts of DEFT-LLM and their projectors into the LLM embedding space.

* structure: static appearance of the onset face from any HF vision tower (SigLIP, CLIP, ...).
* dynamic: how appearance changes across the frame stack (frame differences -> conv -> temporal conv).
* motion: the (u, v, strain) flow field pooled per AU region with soft masks on a canonical aligned-face
  layout, fused with the shard's per-region statistics: one token per region, plus the AU head.

Each expert returns ``(tokens (B, n, D), summary (B, D))`` with ``D`` the LLM hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Region centres (x, y as fractions of the aligned crop; image axes, subject's right = image left): the
# mean dlib-68 landmark positions of each region (facs.REGIONS) after unimer_builder.face's eye alignment
# (eye centres at x = 0.5 -/+ 0.18, y = 0.28), measured on the builder's synthetic subjects. Override
# with DeftConfig.region_layout for another aligner.
DEFAULT_REGION_LAYOUT: dict[str, tuple[float, float]] = {
    "brow_inner_R": (0.39, 0.19), "brow_inner_L": (0.62, 0.19),
    "brow_outer_R": (0.20, 0.20), "brow_outer_L": (0.81, 0.20),
    "glabella": (0.51, 0.23),
    "upper_lid_R": (0.32, 0.25), "upper_lid_L": (0.68, 0.25),
    "lower_lid_R": (0.32, 0.30), "lower_lid_L": (0.68, 0.30),
    "cheek_R": (0.26, 0.46), "cheek_L": (0.75, 0.46),
    "nose": (0.51, 0.49),
    "upper_lip": (0.50, 0.59),
    "lip_corner_R": (0.31, 0.59), "lip_corner_L": (0.69, 0.59),
    "lower_lip": (0.50, 0.72),
    "chin": (0.50, 0.89),
}


class Projector(nn.Module):
    """LLaVA-style two-layer MLP into the LLM embedding space."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, x):
        return self.net(x)


class StructureExpert(nn.Module):
    def __init__(self, vision: nn.Module, n_tokens: int, d_llm: int):
        super().__init__()
        self.vision = vision
        self.n_tokens = n_tokens
        self.proj = Projector(vision.config.hidden_size, d_llm)

    def forward(self, pixel_values: torch.Tensor):
        dtype = next(self.vision.parameters()).dtype
        h = self.vision(pixel_values=pixel_values.to(dtype)).last_hidden_state  # (B, N, H)
        tokens = F.adaptive_avg_pool1d(h.transpose(1, 2).float(), self.n_tokens).transpose(1, 2)
        tokens = self.proj(tokens)
        return tokens, tokens.mean(1)


class DynamicExpert(nn.Module):
    """Frame differences (to the onset and to the previous frame) -> per-step conv -> temporal conv."""

    def __init__(self, dim: int, n_tokens: int, d_llm: int, gain: float = 8.0):
        super().__init__()
        self.gain = gain
        self.n_tokens = n_tokens
        c = max(8, dim // 2)
        self.spatial = nn.Sequential(
            nn.Conv2d(2, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU(),
            nn.Conv2d(c, dim, 3, stride=2, padding=1), nn.GroupNorm(1, dim), nn.GELU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.step = nn.Linear(4 * dim, dim)
        self.temporal = nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1), nn.GELU())
        self.proj = Projector(dim, d_llm)

    def forward(self, frames: torch.Tensor):  # (B, T, H, W) in [0, 1]
        B, T, H, W = frames.shape
        if T < 2:
            frames = torch.cat([frames, frames], 1)
            T = 2
        to_onset = frames[:, 1:] - frames[:, :1]
        to_prev = frames[:, 1:] - frames[:, :-1]
        x = torch.stack([to_onset, to_prev], 2).reshape(B * (T - 1), 2, H, W) * self.gain
        x = self.spatial(x).reshape(B, T - 1, -1)
        x = self.step(x).transpose(1, 2)  # (B, dim, T-1)
        x = self.temporal(x)
        tokens = F.adaptive_avg_pool1d(x, self.n_tokens).transpose(1, 2)
        tokens = self.proj(tokens)
        return tokens, tokens.mean(1)


def region_masks(names, layout, size: int, sigma: float) -> torch.Tensor:
    """(R, size, size) soft Gaussian masks, each summing to 1."""
    lay = {**DEFAULT_REGION_LAYOUT, **(layout or {})}
    missing = [n for n in names if n not in lay]
    if missing:
        raise ValueError(f"region_layout has no centre for region(s) {missing}")
    ax = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    masks = []
    for n in names:
        cx, cy = lay[n]
        g = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        masks.append(g / g.sum())
    return torch.stack(masks)


def signed_log(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


class MotionExpert(nn.Module):
    """One token per AU region from the pooled flow field and the region statistics; the AU head.

    The summary (what the emotion head and the decorrelation read) is ``"regions"``: a linear map of every
    region's features side by side, so that *which* region moves how survives into it, as it does for the
    AU head; ``"mean"`` (runs before issue 9's item 2) averages the region tokens, which loses that: the
    emotion head then has to recover the region from the region embedding's interaction with the motion.
    """

    def __init__(self, region_names, layout, sigma: float, flow_size: int, n_stats: int, dim: int,
                 n_aus: int, d_llm: int, flow_scale: float = 1.0, summary: str = "regions"):
        super().__init__()
        R = len(region_names)
        if summary not in ("regions", "mean"):
            raise ValueError(f"motion summary {summary!r} is not 'regions' or 'mean'")
        self.summary_mode = summary
        self.flow_scale = flow_scale
        c = dim
        self.conv = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
        )
        self.register_buffer("masks", region_masks(region_names, layout, flow_size, sigma), persistent=True)
        self.stats = nn.Linear(n_stats, dim)
        self.region_embed = nn.Parameter(torch.zeros(R, dim))
        self.fuse = nn.Sequential(nn.Linear(c + 3 + dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.au_head = nn.Linear(R * dim, n_aus)
        self.proj = Projector(dim, d_llm)
        if summary == "regions":
            self.summary = nn.Linear(R * dim, d_llm)

    def forward(self, flow: torch.Tensor, region_stats: torch.Tensor):
        flow = flow.float() * self.flow_scale
        masks = self.masks
        if flow.shape[-1] != masks.shape[-1] or flow.shape[-2] != masks.shape[-2]:
            flow = F.interpolate(flow, size=masks.shape[-2:], mode="bilinear", align_corners=True)
        feat = torch.cat([flow, self.conv(flow)], 1)  # (B, 3 + c, F, F)
        pooled = torch.einsum("bchw,rhw->brc", feat, masks.to(feat.dtype))
        st = self.stats(signed_log(region_stats.float()))
        regions = self.fuse(torch.cat([pooled, st], -1)) + self.region_embed
        au_logits = self.au_head(regions.flatten(1))
        tokens = self.proj(regions)
        summary = self.summary(regions.flatten(1)) if self.summary_mode == "regions" else tokens.mean(1)
        return tokens, summary, au_logits


def disentangle_loss(summaries: list[torch.Tensor], memory: list[torch.Tensor] | None = None,
                     eps: float = 1e-5) -> torch.Tensor:
    """Mean squared cross-correlation between the experts' summaries, pair by pair, across clips.

    The correlation is estimated over the batch's rows together with ``memory`` (each expert's detached
    summaries of recent clips, the same number of rows per expert), so that it is the same statistic at
    any batch size: at batch size 1 the current clip's summaries are standardised against the recent
    ones and the gradient pushes the current clip's features away from correlating with the other
    experts' features. Without memory a single row carries no correlation and the term is 0.
    """
    if len(summaries) < 2:
        return summaries[0].new_zeros(())
    if memory is not None and memory[0].shape[0]:
        rows = [torch.cat([s, m.to(s.dtype)], 0) for s, m in zip(summaries, memory, strict=True)]
    else:
        rows = list(summaries)
    n = rows[0].shape[0]
    if n < 2:
        return summaries[0].new_zeros(())
    z = [(r - r.mean(0)) / (r.std(0) + eps) for r in rows]
    total, pairs = 0.0, 0
    for i in range(len(z)):
        for j in range(i + 1, len(z)):
            c = z[i].T @ z[j] / (n - 1)
            total = total + (c**2).mean()
            pairs += 1
    return total / pairs


class SummaryMemory(nn.Module):
    """The last ``size`` training summaries of each expert (detached, first in first out) for
    :func:`disentangle_loss`. A persistent buffer, so that a resumed run continues with the same memory."""

    def __init__(self, n_experts: int, size: int, dim: int):
        super().__init__()
        self.size = size
        self.register_buffer("rows", torch.zeros(n_experts, size, dim), persistent=True)
        self.register_buffer("count", torch.zeros((), dtype=torch.long), persistent=True)

    def read(self) -> list[torch.Tensor]:
        k = int(self.count.clamp(max=self.size))
        return [self.rows[e, :k] for e in range(self.rows.shape[0])]

    @torch.no_grad()
    def push(self, summaries: list[torch.Tensor]) -> None:
        if self.size == 0:
            return
        new = torch.stack([s.detach().float() for s in summaries])[:, -self.size:]  # (E, b, D)
        b = new.shape[1]
        self.rows.copy_(torch.cat([new, self.rows], 1)[:, : self.size])
        self.count.add_(b)
