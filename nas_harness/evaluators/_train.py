"""Training from scratch, the default evaluator's work: build the proxy network, train it, measure it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas_harness.errors import TrialError
from nas_harness.evaluators._base import TrialSpec, library_versions
from nas_harness.records import TrialRecord


def train_cfg(spec: TrialSpec) -> Any:
    """The spec's recipe with its seed."""
    return spec.train.replace(seed=spec.seed)


def train_and_measure(spec: TrialSpec, data: Any, report: Callable[[Any], None] | None,
                      checkpoint: Path | None = None) -> TrialRecord:
    """Train ``spec.arch`` from scratch on ``data`` (a loaded :class:`~nas_harness.data.ProxyData`) and return
    its record (best and final validation accuracy, budget, throughput, provenance; test accuracy when asked)."""
    from nas_harness.model import build_model
    from nas_harness.train import evaluate, train

    cfg = train_cfg(spec)
    import torch

    torch.manual_seed(spec.seed)  # the initial weights depend on the seed only, not on earlier trials
    try:
        model = build_model(spec.arch, num_classes=data.num_classes, in_channels=data.in_channels,
                            stem_stride=spec.stem_stride)
    except (ValueError, RuntimeError) as exc:
        raise TrialError(f"cannot build model: {exc}") from exc
    result = train(model, data, cfg, on_epoch=report, checkpoint=checkpoint)
    record = TrialRecord(
        arch=str(spec.arch), val_acc=float(result.best_val_acc), val_acc_final=float(result.final_val_acc),
        val_loss=float(result.val_loss), val_n=len(data.val_y), epochs=float(result.epochs_run),
        epochs_planned=cfg.planned_epochs(len(data.train_y)), full_budget=True, steps=int(result.steps),
        train_time_s=float(result.train_time_s),
        train_wall_s=float(result.wall_time_s),  # trainer wall incl. evaluation (harness overhead = the rest)
        images_per_s=float(result.images_per_s), peak_mem_bytes=int(result.peak_mem_bytes or 0),
        device=str(result.device), threads=int(result.threads) if result.threads else None,
        cpu_kernels=result.cpu_kernels, seed=int(spec.seed), versions=library_versions(),
        cached=False, macs_resolution=int(spec.macs_resolution),
    )
    if spec.evaluate_test:
        test_acc, test_loss = evaluate(model, data.test_x, data.test_y, cfg)
        record = record.replace(test_acc=float(test_acc), test_loss=float(test_loss), test_n=len(data.test_y))
    del model
    return record
