"""Training the supernet once per study: seeded, checkpointed every epoch, resumable bit-exactly, shared.

Per step, the sampled subnets are drawn from ``random.Random(seed, step)`` (no sampler state to save), the batch
order and augmentation from a seeded ``torch.Generator`` and dropout/stochastic depth from torch's global
generator; the checkpoint (written atomically after every epoch) holds the weights, the optimiser state and both
generators' states, so a run killed at any moment (``kill -9``) and started again ends with the same weights as
an uninterrupted run.  A lock file next to the checkpoint makes concurrent drivers/workers share one training:
the first trains, the others wait for it and then load the finished checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nas_harness._config import write_output
from nas_harness.errors import ConfigError, NonFiniteLossError
from nas_harness.space import SearchSpace
from nas_harness.supernet._net import Supernet, largest_arch, smallest_arch, with_sampled_skips

_FIELDS = ("key", "model", "optimizer", "generator", "torch_rng", "step", "epoch", "total", "history",
           "train_time_s")


def step_archs(space: SearchSpace, sampling: str, n_random: int, seed: int, step: int,
               sample_skip: bool = False) -> list[Any]:
    """The subnets trained at ``step``: one uniform sample (``uniform``), or the largest, the smallest and
    ``n_random`` uniform samples (``sandwich``); a pure function of (seed, step).  ``sample_skip``: each uniform
    sample's residual skips (where the base has them) are drawn on/off too, from the same generator after the
    space's choices (so the other choices are those drawn without it); the largest keeps every skip and the
    smallest drops them."""
    rng = random.Random(f"{seed}:{step}")

    def draw() -> Any:
        arch = space.sample(rng)
        return with_sampled_skips(arch, space.base, rng) if sample_skip else arch

    if sampling == "uniform":
        return [draw()]
    smallest = smallest_arch(space)
    if sample_skip:
        smallest = smallest.replace_stages(skip=False)
    return [largest_arch(space), smallest, *(draw() for _ in range(n_random))]


@contextlib.contextmanager
def file_lock(path: Path, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created); says once when it has to wait for another process."""
    from nas_harness._config import open_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open_lock(path, f"supernet: training lock {str(path)!r}")
    fd = fh.fileno()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log is not None:
                log(f"supernet: another process is training it ({path.name}); waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # releases the lock (also when the process dies)


def load_checkpoint(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (``torch.load(weights_only=True)``: nothing in it runs), or None when absent or
    not a supernet checkpoint (ignored with a warning, training starts afresh); a checkpoint of other settings
    is a ConfigError."""
    import warnings

    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        problem = None if isinstance(ck, dict) and all(f in ck for f in _FIELDS) else "not a supernet checkpoint"
    except Exception as exc:  # truncated, foreign or hostile: never executed
        problem = f"cannot be loaded safely ({type(exc).__name__})"
    if problem is not None:
        warnings.warn(f"supernet checkpoint {str(path)!r} ignored: {problem}; training starts afresh",
                      RuntimeWarning, stacklevel=2)
        return None
    if ck["key"] != key:
        raise ConfigError(f"supernet checkpoint {str(path)!r} was written for other settings; delete it")
    return ck


def _save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_output(path, "wb", f"supernet checkpoint {str(path)!r}") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def train_supernet(net: Supernet, data: Any, recipe: Any, sampling: str, n_random: int, distillation: bool,
                   path: Path, key: dict[str, Any], log: Callable[[str], None] | None = None,
                   stop_after_epochs: int | None = None, sample_skip: bool = False) -> dict[str, Any]:
    """Train ``net`` on ``data`` (a loaded ProxyData) with ``recipe`` (a TrainConfig: optimizer, lr schedule,
    budget, augmentation, seed, threads), writing ``path`` after every epoch and resuming from it; returns the
    final checkpoint (``step == total``).  ``stop_after_epochs`` (tests) returns after that many epochs;
    ``sample_skip``: the residual skips are sampled too (:func:`step_archs`)."""
    from nas_harness.train import build_optimizer, lr_factor
    from nas_harness.train.augment import BatchMaker
    from nas_harness.train.trainer import cpu_threads, resolve_device

    device = resolve_device(recipe.device)
    if device.type == "cpu":
        cpu_threads(recipe.threads)
    ck = load_checkpoint(path, key)
    if ck is not None and ck["step"] >= ck["total"]:
        net.load_state_dict(ck["model"])
        return ck
    net.to(device).train()
    gen = torch.Generator(device=device)
    gen.manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    pad = data.resolution // 8 if recipe.crop_padding is None else recipe.crop_padding
    maker = BatchMaker(data.train_x, data.mean, data.std, device, False, recipe.augment, pad, gen)
    y = data.train_y.to(device)
    opt = build_optimizer(net, recipe, device)
    base_lrs = [g["lr"] for g in opt.param_groups]
    n_train = len(data.train_y)
    batch = min(recipe.batch_size, n_train)
    per_epoch = max(1, n_train // batch)
    total = recipe.steps if recipe.steps is not None else max(1, math.ceil(float(recipe.epochs) * per_epoch))
    warmup = min(total - 1, round(recipe.warmup_epochs * per_epoch)) if recipe.warmup_epochs else 0
    step, epoch, history, train_time = 0, 0, [], 0.0
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        step, epoch, history, train_time = ck["step"], ck["epoch"], ck["history"], ck["train_time_s"]
        if log is not None:
            log(f"supernet: resuming at epoch {epoch} (step {step}/{total}) from {path.name}")
    epochs_total = math.ceil(total / per_epoch)
    done_now = 0
    while step < total:
        epoch += 1
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, device=device, generator=gen)
        losses = []
        for i in range(min(per_epoch, total - step)):
            f = lr_factor(step, total, warmup, recipe.schedule)
            for g, b in zip(opt.param_groups, base_lrs):
                g["lr"] = b * f
            idx = perm[i * batch:(i + 1) * batch]
            xb, yb = maker.train_batch(idx), y[idx]
            opt.zero_grad(set_to_none=True)
            soft = None
            step_loss = 0.0
            archs = step_archs(net.space, sampling, n_random, recipe.seed, step, sample_skip)
            for n, arch in enumerate(archs):
                logits = net(xb, arch)
                if soft is not None:
                    loss = F.cross_entropy(logits, soft)
                else:
                    loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
                loss.backward()
                if n == 0 and sampling == "sandwich" and distillation:
                    soft = torch.softmax(logits.detach(), dim=1)
                step_loss += float(loss.detach())
            if not math.isfinite(step_loss):
                raise NonFiniteLossError(step + 1, step_loss)
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
            opt.step()
            losses.append(step_loss / len(archs))  # mean over the step's subnets (sandwich: distillation losses)
            step += 1
        train_time += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "elapsed_s": train_time})
        ck = {"key": key, "model": net.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
              "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch, "total": total, "history": history,
              "train_time_s": train_time}
        _save(path, ck)
        done_now += 1
        if log is not None:
            eta = (total - step) * train_time / step
            log(f"supernet: epoch {epoch}/{epochs_total}, loss {history[-1]['train_loss']:.3f}, "
                f"{_fmt_s(train_time)} so far, ETA {_fmt_s(eta)}")
        if stop_after_epochs is not None and done_now >= stop_after_epochs:
            break
    net.eval()
    return ck
