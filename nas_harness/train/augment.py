"""Batched, on-device batch assembly: gather + random crop + flip (+ cutout) + normalisation.

The training set is kept once on the training device as a uint8 NHWC tensor.  A batch is one row gather,
one zero-pad and two ``torch.gather`` calls (rows, then columns) that apply every sample's crop offset and
horizontal flip at once - all on uint8, 4x less memory traffic than float - and the NHWC result viewed as
NCHW *is* channels_last, so no layout copy is needed.  One in-place scale+shift normalises.  No per-sample
Python runs in the hot loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class BatchMaker:
    """Builds normalised float model inputs from a uint8 ``(N, C, H, W)`` training set held on ``device``."""

    def __init__(self, x: torch.Tensor, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool, augment: Sequence[str] = (), crop_padding: int = 4,
                 generator: torch.Generator | None = None) -> None:
        c = len(mean)
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, c, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=device).view(1, c, 1, 1)
        self.channels_last = channels_last
        self.crop = "crop" in augment and crop_padding > 0
        self.flip = "flip" in augment
        self.cutout = "cutout" in augment
        self.pad = crop_padding
        self.gen = generator
        self.device = device
        # One-time NHWC copy of the training set on the device (batches are then channels_last for free).
        self.x = x.to(device).permute(0, 2, 3, 1).contiguous()

    def __len__(self) -> int:
        return self.x.shape[0]

    def _finish(self, nhwc: torch.Tensor) -> torch.Tensor:
        out = nhwc.permute(0, 3, 1, 2).float()  # preserve_format: channels_last strides
        out = out.mul_(self.scale).add_(self.shift)
        return out if self.channels_last else out.contiguous()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 NCHW tensor (e.g. a validation slice) without augmentation."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        out = x.to(self.device, non_blocking=True).to(dtype=torch.float32, memory_format=fmt)
        return out.mul_(self.scale).add_(self.shift)

    def window(self, start: int, stop: int) -> torch.Tensor:
        """Un-augmented contiguous training samples ``start:stop`` (BN recalibration)."""
        return self._finish(self.x[start:stop])

    def train_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Training samples ``idx`` with per-sample random crop (zero padding) and flip applied."""
        xb = self.x.index_select(0, idx)
        if not (self.crop or self.flip):
            out = self._finish(xb)
            return self._cutout(out) if self.cutout else out
        n, h, w, c = xb.shape
        dev, g = xb.device, self.gen
        cols = torch.arange(w, device=dev).expand(n, w)
        if self.crop:
            p = self.pad
            xb = F.pad(xb, (0, 0, p, p, p, p))
            rows = torch.arange(h, device=dev) + torch.randint(0, 2 * p + 1, (n, 1), device=dev, generator=g)
            xb = torch.gather(xb, 1, rows.view(n, h, 1, 1).expand(n, h, w + 2 * p, c))
            cols = cols + torch.randint(0, 2 * p + 1, (n, 1), device=dev, generator=g)
        if self.flip:
            flip = torch.rand((n, 1), device=dev, generator=g) < 0.5
            cols = torch.where(flip, cols.flip(1), cols)
        xb = torch.gather(xb, 2, cols.view(n, 1, w, 1).expand(n, h, w, c))
        out = self._finish(xb)
        return self._cutout(out) if self.cutout else out

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Zero (= the mean, after normalisation) one random square of side H/2 per sample."""
        n, _, h, w = x.shape
        half = max(1, h // 2) // 2
        cy = torch.randint(0, h, (n, 1, 1), device=x.device, generator=self.gen)
        cx = torch.randint(0, w, (n, 1, 1), device=x.device, generator=self.gen)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
        return x.masked_fill_(inside[:, None], 0.0)
