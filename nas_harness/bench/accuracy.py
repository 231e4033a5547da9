"""``accuracy`` suite: what the default proxy reaches, and how fast — the accuracy sanity figure.

B0 at width 0.5 with a stride-1 stem (the 28–32 px proxy adaptation), trained with the default recipe
(SGD-Nesterov, cosine, flip, label smoothing 0.1, batch 128) on a seeded 10,000-image stratified
Fashion-MNIST subset for 2 epochs; validation on 1,000 images held out from the training file; wall time
covers data loading, training, BN re-estimation and every evaluation.  ``--quick`` trains 1 epoch on
5,000 images.  The longer, full-training-set recipe (≥ 92 %) is ``studies/fashion_mnist_full.toml``.
"""

from __future__ import annotations

import time
from typing import Any

from nas_harness.bench import Suite


def run(quick: bool) -> dict[str, Any]:
    import torch

    from nas_harness.data import ProxyConfig, clear_cache, find_fashion_mnist, load_proxy
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch
    from nas_harness.train import TrainConfig, train

    if find_fashion_mnist() is None:
        return {"skipped": "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"}
    subset, epochs = (5000, 1) if quick else (10000, 2)
    arch = scale_arch(efficientnet_b0(), width=0.5)
    clear_cache()  # time the load too, as a fresh trial process would see it
    t0 = time.perf_counter()
    data = load_proxy(ProxyConfig(dataset="fashion_mnist", train_subset=subset, val_size=1000, resolution=28,
                                  channels=1))
    torch.manual_seed(0)
    model = build_model(arch, num_classes=data.num_classes, in_channels=1, stem_stride=1)
    cfg = TrainConfig(epochs=epochs)
    res = train(model, data, cfg)
    wall = time.perf_counter() - t0
    return {
        "arch": str(arch), "stem_stride": 1, "dataset": data.name, "train_images": len(data.train_y),
        "val_images": len(data.val_y), "resolution": 28, "epochs": epochs, "recipe": cfg.to_dict(),
        "val_acc": res.final_val_acc, "best_val_acc": res.best_val_acc, "wall_time_s": wall,
        "train_time_s": res.train_time_s, "images_per_s": res.images_per_s, "threads": res.threads,
        "history": res.history,
    }


SUITE = Suite("accuracy", "default proxy recipe: B0-w0.5 on 10k Fashion-MNIST, 2 epochs (val acc, wall time)",
              run)
