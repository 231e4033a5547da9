"""The proxy trainer: whole dataset on the device, batches by index, everything batched.

Why it is fast: the uint8 dataset is moved to the device once and never copied per sample; each batch is
one gather that also applies crop/flip (see :mod:`augment`), produced directly in channels_last; the
optimiser uses fused/foreach kernels; losses are kept on the device and inspected in blocks (one host sync
per block instead of ``.item()`` every step on GPU); evaluation runs under ``inference_mode`` with a large
batch.  Why it is correct on short budgets: BatchNorm statistics are re-estimated on training batches
before every evaluation (``bn_recalibrate``), so a few hundred steps evaluate far above chance regardless
of the model's BN momentum.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas_harness import kernels
from nas_harness._config import open_regular, write_output
from nas_harness.data import ProxyData
from nas_harness.errors import ConfigError, NonFiniteLossError, TrialOutOfMemoryError
from nas_harness.train.augment import BatchMaker
from nas_harness.train.config import TrainConfig
from nas_harness.train.optim import build_optimizer, lr_factor

_NORM_ATTR = "_nas_harness_input_norm"


@dataclass(frozen=True)
class EpochReport:
    """Passed to ``on_epoch`` after each (possibly partial, last) epoch; ``epoch`` counts from 1."""

    epoch: int
    val_acc: float
    val_loss: float
    train_loss: float
    elapsed_s: float


@dataclass
class TrainResult:
    """Outcome of :func:`train`.  ``images_per_s`` counts training images over ``train_time_s`` only."""

    best_val_acc: float
    final_val_acc: float
    val_loss: float
    epochs_run: float
    steps: int
    wall_time_s: float
    train_time_s: float
    images_per_s: float
    peak_mem_bytes: int
    device: str
    train_loss: float = float("nan")
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    threads: int = 0
    cpu_kernels: str = "off"  # "on", "off" (train.cpu_kernels) or "unavailable: <reason>"; see _cpu_kernels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> first CUDA device when present, else CPU; asking for absent CUDA is a ConfigError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {spec!r} but no CUDA device is available; use auto or cpu")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device = {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(spec)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is no /proc (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_cores(window_s: float = 0.1) -> float:
    """How many cores other work keeps busy *now* (sampled over ``window_s`` while this process waits).

    An instantaneous sample rather than the load average: the 1-minute average still shows a job that
    ended seconds ago and would needlessly halve a trial's threads.
    """
    a = _cpu_times()
    if a is None:
        return max(0.0, os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    time.sleep(window_s)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return 0.0
    # /proc/stat's first line sums every CPU of the machine, not only those in our affinity mask.
    return (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)


def cpu_threads(spec: int | str | None) -> int:
    """Intra-op CPU threads for ``spec`` (see TrainConfig.threads); also applies it via set_num_threads.

    ``auto``: all cores this process may use, minus those other work keeps busy right now (at least one):
    an OpenMP region whose threads share a core with another job stalls on the descheduled one.  It leaves
    the setting alone when ``OMP_NUM_THREADS`` is set (a launcher such as Ray already decided).
    """
    if spec is None:
        return torch.get_num_threads()
    if spec == "auto" and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # a launcher (e.g. Ray, one thread per worker) already decided
    if spec == "auto":
        cores = usable_cores()
        spec = max(1, min(cores, cores - round(busy_cores())))
    torch.set_num_threads(int(spec))
    return int(spec)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "bf16" or (amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_kernels(cfg: TrainConfig, device: torch.device) -> str:
    """Whether :func:`train` attaches the CPU kernels (:mod:`nas_harness.kernels`): ``"on"``, ``"off"``
    (``train.cpu_kernels = "off"``) or ``"unavailable: <reason>"`` (not on CPU, no C compiler, ...)."""
    if cfg.cpu_kernels == "off":
        return "off"
    if device.type != "cpu":
        return f"unavailable: device is {device.type}"
    if cfg.compile:
        return "unavailable: train.compile (the compiled graph uses the stock ops)"
    if cfg.amp == "bf16":
        return "unavailable: bf16 autocast"
    if not _use_channels_last(cfg, device):
        return "unavailable: train.channels_last = false"
    reason = kernels.unavailable_reason()
    return "on" if reason is None else f"unavailable: {reason}"


def _use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    # Measured: channels_last is faster for MBConv nets both on CUDA (tensor cores) and on CPU (oneDNN
    # depthwise/BN kernels), see README "Trainer benchmark".
    return True if cfg.channels_last == "auto" else bool(cfg.channels_last)


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _peak_mem(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    # Process-wide peak RSS (kilobytes on Linux): an upper bound on what the trial needed on CPU.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@torch.no_grad()
def zero_init_residual(model: nn.Module) -> int:
    """Zero the scale of the last BN in each residual branch (modules with ``use_res_connect`` and a
    ``block``, i.e. MBConv), so every block starts as the identity; returns how many were zeroed."""
    n = 0
    for mod in model.modules():
        if getattr(mod, "use_res_connect", False) and isinstance(getattr(mod, "block", None), nn.Module):
            bns = [b for b in mod.block.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
            if bns and bns[-1].weight is not None:
                bns[-1].weight.zero_()
                n += 1
    return n


@torch.no_grad()
def recalibrate_bn(model: nn.Module, maker: BatchMaker, batches: int, batch_size: int,
                   autocast: contextlib.AbstractContextManager | None = None) -> None:
    """Recompute BN running statistics as exact averages over ``batches`` un-augmented training batches.

    Only the BN layers are put in training mode (dropout / drop-path stay off), momentum is set to None
    (cumulative average) for the pass and restored afterwards.
    """
    bns = _bn_modules(model)
    if not bns or batches <= 0 or len(maker) == 0:
        return
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    # Evenly spaced contiguous windows: deterministic and no gather needed.
    n = min(batch_size, len(maker))
    starts = torch.linspace(0, len(maker) - n, steps=min(batches, max(1, len(maker) // n))).long().tolist()
    try:
        with autocast or contextlib.nullcontext():
            for s in starts:
                model(maker.window(s, s + n))
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, maker: BatchMaker, batch_size: int,
              autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=maker.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=maker.device)
    try:
        with torch.inference_mode(), autocast:
            for i in range(0, len(x), batch_size):
                logits = model(maker.normalise(x[i: i + batch_size])).float()
                yb = y[i: i + batch_size].to(maker.device, non_blocking=True)
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
                correct += (logits.argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(1, len(x))
    return correct.item() / n, loss_sum.item() / n


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig | None = None, *,
             mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> tuple[float, float]:
    """Accuracy in [0, 1] and mean cross-entropy of ``model`` on uint8 images ``x`` (e.g. the test set).

    ``mean``/``std`` default to the normalisation :func:`train` used for this model (it records them on
    the model), so ``evaluate(model, data.test_x, data.test_y, cfg)`` is correct after ``train``.
    """
    cfg = cfg or TrainConfig()
    if mean is None or std is None:
        norm = getattr(model, _NORM_ATTR, None)
        if norm is None:
            raise ConfigError("evaluate: pass mean= and std= (the model was not trained by nas_harness.train)")
        mean, std = norm
    device = resolve_device(cfg.device)
    model.to(device)
    cl = _use_channels_last(cfg, device)
    if cl:
        model.to(memory_format=torch.channels_last)
    maker = BatchMaker(x[:0], mean, std, device, cl)
    return _evaluate(model, x, y, maker, cfg.eval_batch_size, _autocast(device, cfg.amp))


def _recipe_key(cfg: TrainConfig, data: ProxyData) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (device, threads, compile and CPU kernels may change)."""
    d = cfg.comparable()
    for k in ("threads", "cpu_kernels"):  # the same numbers within chaos; a resumed run may change them
        d.pop(k, None)
    return {"train": d, "data": data.name, "n_train": len(data.train_y), "n_val": len(data.val_y)}


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> bool:
    """Write atomically (temp file + rename), so a crash mid-write leaves the previous checkpoint intact.

    A checkpoint that cannot be written (full disk, read-only or vanished folder) is not worth a lost run: the
    partial temp file is removed, one warning names the file and why, and training goes on (a restart then
    resumes from the previous checkpoint, if there is one).  Returns whether the checkpoint was written.
    """
    import warnings

    from nas_harness.errors import environment_line, os_reason

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temp file replacing the checkpoint (a FIFO or device in its place is refused); a failed write is an
        # OSError with its errno, and the temp file is removed
        with write_output(path, "wb", f"checkpoint {str(path)!r}") as f:
            torch.save(payload, f)
        return True
    except ConfigError as exc:
        warnings.warn(f"checkpoint not written: {exc}; training goes on without it", RuntimeWarning, stacklevel=3)
        return False
    except (OSError, RuntimeError) as exc:
        line = environment_line(exc, path)  # a full disk, a read-only folder: worded as everywhere else
        what = f"checkpoint not written: {line}" if line else f"checkpoint {str(path)!r} not written ({os_reason(exc)})"
        warnings.warn(f"{what}; training goes on without it, and a restart would resume from the previous checkpoint "
                      "if there is one", RuntimeWarning, stacklevel=3)
        return False


#: What a checkpoint holds (name -> check); anything else is not a checkpoint of this trainer.
_CHECKPOINT_FIELDS: dict[str, Callable[[Any], bool]] = {
    "recipe": lambda v: isinstance(v, dict),
    "model": lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                                   for k, t in v.items()),
    "optimizer": lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
    and isinstance(v.get("param_groups"), list),
    "generator": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
    "torch_rng": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
    "cuda_rng": lambda v: v is None or (isinstance(v, torch.Tensor) and v.dtype == torch.uint8),
    "step": lambda v: type(v) is int and v >= 0,
    "epoch": lambda v: type(v) is int and v >= 0,
    "history": lambda v: isinstance(v, list) and all(
        isinstance(h, dict) and all(isinstance(k, str) and type(x) in (int, float) for k, x in h.items())
        for h in v),
    "train_time_s": lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0,
    "best_val_acc": lambda v: type(v) in (int, float) and -1.0 <= v <= 1.0,
    "best_epoch": lambda v: type(v) is int and v >= 0,
    "wall_time_s": lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0,
}


def _checkpoint_problem(ck: Any) -> str | None:
    """What makes ``ck`` not a checkpoint of this trainer, or None."""
    if not isinstance(ck, dict):
        return f"holds {type(ck).__name__}, not a checkpoint"
    for name, ok in _CHECKPOINT_FIELDS.items():
        if name not in ck:
            return f"has no {name!r} entry"
        if not ok(ck[name]):
            return f"its {name!r} entry is malformed"
    if len(ck["history"]) != ck["epoch"]:
        return f"its history has {len(ck['history'])} epochs but it says epoch {ck['epoch']}"
    return None


def _load_checkpoint(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` to resume from, or None to start afresh.

    It is loaded with ``weights_only=True``: PyTorch's restricted unpickler rebuilds tensors, numbers, strings,
    lists, tuples and dicts only, so a file crafted to run code when unpickled (a plain pickle or a ``.pt``
    with a ``__reduce__`` payload) is refused without running anything.  A file that does not load that way or
    does not have a checkpoint's structure is ignored with ONE warning naming it: training starts from epoch 1
    and the first epoch's checkpoint replaces the file.  A well-formed checkpoint of another recipe is refused
    with a ConfigError (resuming it would silently mix two experiments).
    """
    import warnings

    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    try:
        with open_regular(path) as f:  # a FIFO or device in its place is refused, never read
            ck = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, foreign or hostile file: name it, never execute it
        detail = " ".join(str(exc).split())[:160]
        problem = f"cannot be loaded safely ({type(exc).__name__}: {detail})"
    else:
        problem = _checkpoint_problem(ck)
    if problem is not None:
        warnings.warn(f"checkpoint {str(path)!r} ignored: {problem}; training starts afresh from epoch 1",
                      RuntimeWarning, stacklevel=3)
        return None
    if ck.get("recipe") != key:
        raise ConfigError(f"checkpoint {str(path)!r} was written for a different recipe or dataset; delete it "
                          "or choose another output directory")
    return ck


def train(model: nn.Module, data: ProxyData, cfg: TrainConfig,
          on_epoch: Callable[[EpochReport], None] | None = None,
          checkpoint: str | os.PathLike[str] | None = None) -> TrainResult:
    """Train ``model`` in place on ``data.train_*`` and validate on ``data.val_*`` after every epoch.

    Raises NonFiniteLossError(step, loss) when the loss stops being finite and TrialOutOfMemoryError(step)
    when the device runs out of memory; in both cases, and when ``on_epoch`` raises (e.g. optuna pruning),
    device memory is released before the exception propagates.

    ``checkpoint``: a file written after every epoch (model, optimiser, RNG states, history).  When it
    exists at the start, training resumes from it and continues exactly as the uninterrupted run would;
    a checkpoint from a different recipe is refused with a ConfigError.

    On CPU with ``cfg.cpu_kernels == "auto"``, the model trains (and is evaluated) through the CPU kernels
    (:func:`nas_harness.kernels.accelerate`), and gets its stock module classes back when ``train`` returns
    or raises; ``TrainResult.cpu_kernels`` records what was used.
    """
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    threads = cpu_threads(cfg.threads) if device.type == "cpu" else torch.get_num_threads()
    torch.manual_seed(cfg.seed)  # dropout / drop-path draws
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.backends.cudnn.benchmark = True
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    cl = _use_channels_last(cfg, device)
    autocast = _autocast(device, cfg.amp)
    cpu_kernels = _cpu_kernels(cfg, device)
    was_accelerated = kernels.is_accelerated(model)
    (kernels.accelerate if cpu_kernels == "on" else kernels.deaccelerate)(model)

    n_train = len(data.train_y)
    batch = min(cfg.batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch)
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(float(cfg.epochs) * steps_per_epoch))
    warmup = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch)) if cfg.warmup_epochs else 0
    check_every = 1 if device.type == "cpu" else 25  # host syncs are free on CPU, not on GPU

    step = 0
    state: dict[str, Any] = {}
    try:
        model.to(device)
        if cl:
            model.to(memory_format=torch.channels_last)
        if cfg.zero_init_residual:
            zero_init_residual(model)
        if cfg.bn_momentum is not None:
            for bn in _bn_modules(model):
                bn.momentum = cfg.bn_momentum
        setattr(model, _NORM_ATTR, (tuple(data.mean), tuple(data.std)))
        pad = data.resolution // 8 if cfg.crop_padding is None else cfg.crop_padding
        state["maker"] = maker = BatchMaker(data.train_x, data.mean, data.std, device, cl, cfg.augment, pad, gen)
        state["y"] = y = data.train_y.to(device, non_blocking=True)
        state["vx"] = vx = data.val_x.to(device, non_blocking=True)
        state["vy"] = vy = data.val_y.to(device, non_blocking=True)
        state["opt"] = opt = build_optimizer(model, cfg, device)
        net = torch.compile(model) if cfg.compile else model
        params = [p for p in model.parameters() if p.requires_grad]
        base_lrs = [g["lr"] for g in opt.param_groups]

        history: list[dict[str, float]] = []
        best_acc, best_epoch, val_acc, val_loss, train_loss = -1.0, 0, 0.0, float("nan"), float("nan")
        train_time = 0.0
        epoch = 0
        ck_path = Path(checkpoint) if checkpoint is not None else None
        key = _recipe_key(cfg, data)
        ck = _load_checkpoint(ck_path, key) if ck_path is not None else None
        if ck is not None:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            gen.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if device.type == "cuda" and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"], device)
            step, epoch, history, train_time = ck["step"], ck["epoch"], ck["history"], ck["train_time_s"]
            best_acc, best_epoch = ck["best_val_acc"], ck["best_epoch"]
            last = history[-1] if history else {}
            val_acc, val_loss = last.get("val_acc", 0.0), last.get("val_loss", float("nan"))
            train_loss = last.get("train_loss", float("nan"))
            t_start -= ck["wall_time_s"]
        model.train()
        while step < total:
            epoch += 1
            t_epoch = time.perf_counter()
            perm = torch.randperm(n_train, device=device, generator=gen)
            losses: list[torch.Tensor] = []
            checked = 0
            n_steps = min(steps_per_epoch, total - step)
            for i in range(n_steps):
                f = lr_factor(step, total, warmup, cfg.schedule)
                for g, base in zip(opt.param_groups, base_lrs):
                    g["lr"] = base * f
                idx = perm[i * batch: (i + 1) * batch]
                xb = maker.train_batch(idx)
                yb = y[idx]
                with autocast:
                    loss = F.cross_entropy(net(xb).float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                opt.step()
                losses.append(loss.detach())
                step += 1
                if step % check_every == 0 or i == n_steps - 1:
                    _check_finite(losses[checked:], step)
                    checked = len(losses)
            train_time += time.perf_counter() - t_epoch
            train_loss = float(torch.stack(losses).mean())
            recalibrate_bn(model, maker, cfg.bn_recalibrate, batch, autocast)
            val_acc, val_loss = _evaluate(net, vx, vy, maker, cfg.eval_batch_size, autocast)
            if val_acc > best_acc:
                best_acc, best_epoch = val_acc, epoch
            report = EpochReport(epoch, val_acc, val_loss, train_loss, time.perf_counter() - t_start)
            history.append(asdict(report))
            if ck_path is not None:
                _save_checkpoint(ck_path, {
                    "recipe": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None, "step": step,
                    "epoch": epoch, "history": history, "train_time_s": train_time,
                    "best_val_acc": best_acc, "best_epoch": best_epoch,
                    "wall_time_s": time.perf_counter() - t_start})
            if on_epoch is not None:
                on_epoch(report)
        return TrainResult(
            best_val_acc=best_acc, final_val_acc=val_acc, val_loss=val_loss, epochs_run=step / steps_per_epoch,
            steps=step, wall_time_s=time.perf_counter() - t_start, train_time_s=train_time,
            images_per_s=step * batch / max(train_time, 1e-9), peak_mem_bytes=_peak_mem(device),
            device=str(device), train_loss=train_loss, best_epoch=best_epoch, history=history,
            threads=threads, cpu_kernels=cpu_kernels,
        )
    except Exception as exc:
        if not _is_oom(exc):
            raise
        detail = " ".join(str(exc).split())[:200]
    finally:
        # Drop our references (dataset copies, optimiser state, gradients) so the next trial has the memory.
        state.clear()
        model.zero_grad(set_to_none=True)
        (kernels.accelerate if was_accelerated else kernels.deaccelerate)(model)  # as the caller gave it
        if device.type == "cuda":
            _free_device_memory(device)
    _free_device_memory(device)
    raise TrialOutOfMemoryError(step, detail)


def _check_finite(block_losses: list[torch.Tensor], step: int) -> None:
    """Raise NonFiniteLossError for the first non-finite loss among the last steps (ending at ``step``)."""
    block = torch.stack(block_losses)
    finite = torch.isfinite(block)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        bad_step = step - len(block) + first + 1
        raise NonFiniteLossError(bad_step, float(block[first]))
