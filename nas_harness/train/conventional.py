"""The conventional pipeline the trainer is benchmarked against (not used for real trials).

This is what a typical research script does: a ``Dataset`` whose ``__getitem__`` converts one uint8 image
to float, pads and randomly crops it, flips it and normalises it; a ``DataLoader`` that collates batches;
NCHW float32; a plain loop with ``loss.item()`` each step and the default (per-parameter) SGD kernel.
On a GPU, batches are collated on the host (pinned, with loader workers where asked) and copied to the
device each step, as such scripts do.  Same optimiser, schedule, label smoothing and augmentation
semantics as :func:`nas_harness.train.train`.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nas_harness.data import ProxyData


class PerSampleDataset(Dataset):
    """One image at a time: ToTensor -> pad+RandomCrop -> RandomHorizontalFlip -> Normalize."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                 augment: bool = True, padding: int = 4) -> None:
        self.x = x.numpy()
        self.y = y.numpy()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.augment = augment
        self.padding = padding

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = torch.from_numpy(self.x[i]).float().div(255.0)
        if self.augment:
            p = self.padding
            _, h, w = img.shape
            img = F.pad(img, (p, p, p, p))
            top, left = random.randint(0, 2 * p), random.randint(0, 2 * p)
            img = img[:, top: top + h, left: left + w]
            if random.random() < 0.5:
                img = img.flip(-1)
        img = (img - self.mean) / self.std
        return img, int(self.y[i])


def train_conventional(model: nn.Module, data: ProxyData, steps: int, batch_size: int = 128, lr: float = 0.1,
                       momentum: float = 0.9, weight_decay: float = 5e-5, label_smoothing: float = 0.1,
                       num_workers: int = 0, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train ``steps`` steps the conventional way on ``device``; returns images/s and timing."""
    random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device(device)
    model.to(device)
    ds = PerSampleDataset(data.train_x, data.train_y, data.mean, data.std)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=num_workers,
                        persistent_workers=num_workers > 0, pin_memory=device.type == "cuda")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    done, running = 0, 0.0
    t0 = time.perf_counter()
    while done < steps:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            done += 1
            if done >= steps:
                break
    elapsed = time.perf_counter() - t0  # loss.item() synchronised every step: nothing is left queued
    return {"images_per_s": done * batch_size / elapsed, "steps": done, "time_s": elapsed,
            "mean_loss": running / max(done, 1), "num_workers": num_workers, "device": str(device)}
