"""``trainer`` suite: proxy trainer vs. the conventional DataLoader pipeline, images/s and ratio.

Same architecture (B0 at width 0.5, stride-1 stem, 10 classes), same initial weights, batch size,
resolution, steps, optimiser and augmentation, in one process, on the same device (the GPU where there is
one: there the conventional loader gets pinned memory and up to 4 worker processes, as GPU scripts do).
The conventional pipeline gets the model as :func:`~nas_harness.model.build_model` returns it, which is
what a researcher would take from torchvision (stock modules, in-place SiLU).  To show where the ratio
comes from, the trainer is also timed without its CPU kernels (``trainer_stock_layers``,
``train.cpu_kernels = "off"``): trainer/stock-trainer is the share of the kernels
(:mod:`nas_harness.kernels`: fused BN+activation and SE passes, depthwise weight gradient, small-map
1x1 convolutions as matmuls, out-of-place SiLU), stock-trainer/conventional the share of the data path,
channels_last and the optimiser.  Runs alternate (conventional, trainer, ...) so background load hits all
alike; medians are reported.  The headline ratio uses the same CPU thread count for both; the trainer's
``threads='auto'`` figure (the cores other work leaves idle) is reported separately because it depends on
the machine's other load.  ``cpu_kernels`` records what the trainer used (``TrainResult.cpu_kernels``: ``on``, or
``unavailable: <reason>`` without a C compiler, in which case both trainer figures are stock);
``native_kernels`` is its boolean.
"""

from __future__ import annotations

import copy
import statistics
from typing import Any

from nas_harness.bench import Suite

STEPS = {True: 12, False: 24}  # timed steps per run (quick, full); warm-up runs come on top


def run(quick: bool) -> dict[str, Any]:
    import torch

    from nas_harness.data import ProxyConfig, find_fashion_mnist, load_proxy
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch
    from nas_harness.train import TrainConfig, train
    from nas_harness.train.conventional import train_conventional
    from nas_harness.train.trainer import resolve_device, usable_cores

    batch, res, steps, warmup, repeats = 128, 32, STEPS[quick], 2, (1 if quick else 3)
    dataset = "fashion_mnist" if find_fashion_mnist() is not None else "synthetic"
    data = load_proxy(ProxyConfig(dataset=dataset, train_subset=batch * steps if dataset != "synthetic" else None,
                                  val_size=256 if dataset != "synthetic" else 0.1, resolution=res, channels=3))
    arch = scale_arch(efficientnet_b0(), width=0.5)
    torch.manual_seed(0)
    base = build_model(arch, num_classes=data.num_classes, in_channels=3, stem_stride=1)
    threads = torch.get_num_threads()
    device = resolve_device("auto")
    workers = min(4, usable_cores()) if device.type == "cuda" else 0

    def fresh() -> torch.nn.Module:
        return copy.deepcopy(base)

    used: set[str] = set()

    def ours(n: int, threads_spec: Any, stock: bool = False) -> float:
        cfg = TrainConfig(steps=n, batch_size=batch, bn_recalibrate=0, threads=threads_spec, eval_batch_size=256,
                          device=str(device), cpu_kernels="off" if stock else "auto")
        r = train(fresh(), data, cfg)
        if not stock:
            used.add(r.cpu_kernels)
        torch.set_num_threads(threads)
        return r.images_per_s

    def conventional(n: int) -> float:
        return train_conventional(fresh(), data, steps=n, batch_size=batch, device=device,
                                  num_workers=workers)["images_per_s"]

    # Warm both code paths (oneDNN primitive caches, allocator) before timing.
    conventional(warmup)
    ours(warmup, None)
    conv_runs, ours_runs, stock_runs, auto_runs = [], [], [], []
    for _ in range(repeats):
        conv_runs.append(conventional(steps))
        ours_runs.append(ours(steps, None))
        stock_runs.append(ours(steps, None, stock=True))
        auto_runs.append(ours(steps, "auto"))
    conv, fast, stock, auto = (statistics.median(v) for v in (conv_runs, ours_runs, stock_runs, auto_runs))
    return {
        "arch": str(arch), "dataset": data.name, "resolution": res, "batch_size": batch, "steps": steps,
        "repeats": repeats, "threads": threads, "cpu_kernels": ", ".join(sorted(used)),
        "native_kernels": used == {"on"}, "device": str(device),
        "conventional_loader_workers": workers,
        "conventional_images_per_s": conv, "trainer_images_per_s": fast, "ratio": fast / conv,
        "trainer_stock_layers_images_per_s": stock, "ratio_from_model_kernels": fast / stock,
        "ratio_from_data_path_and_layout": stock / conv,
        "trainer_auto_threads_images_per_s": auto, "ratio_auto_threads": auto / conv,
        "runs": {"conventional": conv_runs, "trainer": ours_runs, "trainer_stock_layers": stock_runs,
                 "trainer_auto_threads": auto_runs},
    }


SUITE = Suite("trainer", "proxy trainer vs conventional DataLoader pipeline (images/s, ratio)", run)
