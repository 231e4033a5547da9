"""``[evaluator] kind = "supernet"``: score a subnet with weights inherited from the study's supernet.

:meth:`SupernetEvaluator.prepare` trains the supernet once per study (in the driver, before any trial; a file lock
lets concurrent drivers share it).  :meth:`SupernetEvaluator.evaluate` builds the arch with ``build_model``, loads
its inherited weights (:func:`~nas_harness.supernet.subnet_state_dict`), re-estimates every BatchNorm's statistics
on a fixed, seeded set of training batches (the same images for every subnet) and measures accuracy on the
validation split.  The loaded supernet and the recalibration images are cached per process, so scoring costs one
recalibration pass and one validation pass.  The accuracies are *inherited-weight estimates*, not the accuracy
the arch reaches when trained alone: ``nas-harness fidelity RESULTS --against train`` measures how well they rank.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas_harness._config import write_output
from nas_harness.errors import TrialError
from nas_harness.evaluators import EvalContext, Evaluator, TrialSpec, library_versions
from nas_harness.records import TrialRecord
from nas_harness.supernet._config import SupernetConfig
from nas_harness.supernet._net import Supernet, subnet_state_dict, why_not_subnet
from nas_harness.supernet._train import file_lock, load_checkpoint, train_supernet

ACCURACY_NOTE = "inherited-weight estimates (supernet), not stand-alone training"
_RECIPE_FREE = ("device", "threads", "compile", "eval_batch_size", "cpu_kernels")


@dataclass
class _Loaded:
    net: Supernet
    sha: str
    epochs: float
    bn_x: torch.Tensor  # uint8 (N, C, H, W): the recalibration images, fixed per supernet


_LOADED: dict[str, _Loaded] = {}  # per process: checkpoint path -> loaded supernet


class SupernetEvaluator(Evaluator):
    """Inherited-weight accuracy of a subnet of the study's supernet (see the module doc)."""

    kind = "supernet"
    accuracy_note = ACCURACY_NOTE

    def __init__(self, settings: SupernetConfig, ctx: EvalContext, bn_seed_per_trial: bool = False) -> None:
        self.settings = settings
        #: re-estimate BatchNorm on batches drawn with the trial's seed (an ablation's recalibration seeds)
        #: instead of the supernet's fixed batches
        self.bn_seed_per_trial = bn_seed_per_trial
        self.space = ctx.space
        self.data = ctx.data
        self.recipe = settings.recipe(ctx.train)
        self.stem_stride = ctx.trial.stem_stride if ctx.trial is not None else None
        self.folder = (Path(ctx.study_dir) if ctx.study_dir is not None else Path("results")).resolve() / "supernet"

    def identity(self) -> dict[str, Any]:
        options = self.settings.to_dict()
        if not options.get("sample_skip"):  # the option's default leaves earlier studies' identity as it was
            options.pop("sample_skip", None)
        out: dict[str, Any] = {"kind": self.kind, "options": options}
        if self.bn_seed_per_trial:
            out["bn_seed"] = "trial"
        return out

    def describe(self) -> str:
        s = self.settings
        return f"supernet ({s.sampling} sampling, inherited weights, BN re-estimated on {s.bn_batches} batches)"

    # ------------------------------------------------------------------ the supernet itself
    def key(self, data: Any) -> dict[str, Any]:
        """Everything that determines the supernet's weights (a checkpoint of another key is refused)."""
        recipe = {k: v for k, v in self.recipe.to_dict().items() if k not in _RECIPE_FREE}
        s = self.settings
        return {"space": self.space.to_dict(), "base": str(self.space.base), "data": data.fingerprint(),
                "num_classes": data.num_classes, "in_channels": data.in_channels, "stem_stride": self.stem_stride,
                "recipe": recipe, "sampling": s.sampling,
                "n_random": s.n_random if s.sampling == "sandwich" else 0,
                "distillation": s.distillation if s.sampling == "sandwich" else False,
                **({"sample_skip": True} if s.sample_skip else {})}

    def supernet_id(self, data: Any) -> str:
        """A short hash of :meth:`key` (names the checkpoint file; recorded with every trial)."""
        return hashlib.sha256(json.dumps(self.key(data), sort_keys=True).encode()).hexdigest()[:16]

    def checkpoint_path(self, data: Any) -> Path:
        return self.folder / f"supernet-{self.supernet_id(data)}.pt"

    def new_net(self, data: Any) -> Supernet:
        torch.manual_seed(self.recipe.seed)
        return Supernet(self.space, data.num_classes, data.in_channels, self.stem_stride,
                        zero_init_residual=self.recipe.zero_init_residual, sample_skip=self.settings.sample_skip)

    def prepare(self, ctx: EvalContext, log: Callable[[str], None]) -> None:
        """Train the supernet unless its finished checkpoint exists (resuming a partial one); idempotent."""
        from nas_harness.data import load_proxy

        self._ensure_trained(load_proxy(self.data), log)

    def _ensure_trained(self, data: Any, log: Callable[[str], None] | None) -> Path:
        path = self.checkpoint_path(data)
        key = self.key(data)
        ck = load_checkpoint(path, key)
        if ck is not None and ck["step"] >= ck["total"]:
            return path
        with file_lock(path.with_suffix(".lock"), log):
            ck = load_checkpoint(path, key)  # another process may have finished it while we waited
            if ck is not None and ck["step"] >= ck["total"]:
                return path
            if log is not None:
                log(f"supernet: training ({self.settings.sampling} sampling) -> {path}")
            if self.settings.job == "ray":
                _train_on_ray(self, data, path, key)
            else:
                train_supernet(self.new_net(data), data, self.recipe, self.settings.sampling, self.settings.n_random,
                               self.settings.distillation, path, key, log, sample_skip=self.settings.sample_skip)
        return path

    def load(self, data: Any) -> _Loaded:
        """The trained supernet (trained first if need be), cached per process."""
        path = self.checkpoint_path(data)
        hit = _LOADED.get(str(path))
        if hit is not None:
            return hit
        self._ensure_trained(data, None)
        ck = load_checkpoint(path, self.key(data))
        if ck is None or ck["step"] < ck["total"]:
            raise TrialError(f"supernet checkpoint {str(path)!r} is missing or unfinished")
        with torch.random.fork_rng():  # the initial weights are replaced: leave this process's RNG as it was
            net = self.new_net(data)
        net.load_state_dict(ck["model"])
        net.eval()
        sha = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in ck["model"].values())).hexdigest()[:16]
        n_train = len(data.train_y)
        per_epoch = max(1, n_train // min(self.recipe.batch_size, n_train))
        loaded = _Loaded(net, sha, round(ck["step"] / per_epoch, 4), self._bn_images(data, self.recipe.seed))
        _LOADED[str(path)] = loaded
        return loaded

    # ------------------------------------------------------------------ scoring
    def contains(self, arch: Any) -> str | None:
        """Why ``arch`` is not a subnet of this supernet (None when it is; see :func:`why_not_subnet`)."""
        return why_not_subnet(self.space, arch, self.settings.sample_skip)

    def _bn_images(self, data: Any, seed: int) -> torch.Tensor:
        n = min(len(data.train_y), self.settings.bn_batches * self.settings.bn_batch_size)
        g = torch.Generator().manual_seed(seed)
        return data.train_x[torch.randperm(len(data.train_y), generator=g)[:n]].clone()

    def subnet(self, arch: Any, data: Any, bn_seed: int | None = None) -> torch.nn.Module:
        """``build_model(arch)`` with the supernet's weights and BatchNorm statistics re-estimated on the fixed
        recalibration batches (``bn_seed``: batches drawn with that seed instead), in eval mode, on the CPU."""
        from nas_harness.model import build_model
        from nas_harness.train import recalibrate_bn
        from nas_harness.train.augment import BatchMaker

        reason = self.contains(arch)
        if reason is not None:
            raise TrialError(f"arch is not in the supernet: {reason}")
        loaded = self.load(data)
        model = build_model(arch, data.num_classes, data.in_channels, self.stem_stride)
        model.load_state_dict(subnet_state_dict(loaded.net, arch), strict=True)
        model.to(memory_format=torch.channels_last)  # as evaluation runs it (faster depthwise kernels on CPU)
        bn_x = loaded.bn_x if bn_seed is None else self._bn_images(data, bn_seed)
        maker = BatchMaker(bn_x, data.mean, data.std, torch.device("cpu"), True)
        size = min(self.settings.bn_batch_size, len(bn_x))
        recalibrate_bn(model, maker, self.settings.bn_batches, size)
        model.eval()
        return model

    def evaluate(self, spec: TrialSpec, report: Callable[[Any], None] | None = None,
                 checkpoint: Path | None = None) -> TrialRecord:
        import time

        from nas_harness.data import load_proxy
        from nas_harness.train import evaluate
        from nas_harness.train.trainer import cpu_threads

        t0 = time.perf_counter()
        data = load_proxy(spec.data)
        threads = cpu_threads(spec.train.threads)
        cfg = spec.train.replace(device="cpu")
        norm = {"mean": tuple(data.mean), "std": tuple(data.std)}
        with torch.no_grad():
            bn_seed = int(spec.seed) if self.bn_seed_per_trial else None
            model = self.subnet(spec.arch, data, bn_seed)
            acc, loss = evaluate(model, data.val_x, data.val_y, cfg, **norm)
            test = evaluate(model, data.test_x, data.test_y, cfg, **norm) if spec.evaluate_test else None
        loaded = self.load(data)
        s = self.settings
        record = TrialRecord(
            arch=str(spec.arch), val_acc=float(acc), val_acc_final=float(acc), val_loss=float(loss),
            val_n=len(data.val_y), epochs=loaded.epochs, full_budget=True, seed=int(spec.seed),
            train_time_s=0.0, train_wall_s=time.perf_counter() - t0, device="cpu", threads=threads,
            versions=library_versions(), cached=False, macs_resolution=int(spec.macs_resolution))
        if test is not None:
            record = record.replace(test_acc=float(test[0]), test_loss=float(test[1]), test_n=len(data.test_y))
        return record.with_extra(supernet_id=self.supernet_id(data), supernet_weights=loaded.sha,
                              supernet_epochs=loaded.epochs, supernet_sampling=s.sampling, bn_batches=s.bn_batches,
                              bn_batch_size=s.bn_batch_size, accuracy_note=ACCURACY_NOTE,
                              **({"bn_seed": int(spec.seed)} if self.bn_seed_per_trial else {}),
                              **({"sample_skip": True} if s.sample_skip else {}))

    def export(self, arch: Any, out: Path, finetune_epochs: float = 0.0) -> dict[str, Any]:
        """Write ``arch``'s inherited weights (BN re-estimated; fine-tuned ``finetune_epochs`` with the study's
        recipe from there when > 0) as a state dict that ``build_model(arch, num_classes, in_channels,
        stem_stride)`` loads; returns what was written."""
        from nas_harness.data import load_proxy
        from nas_harness.train import train

        data = load_proxy(self.data)
        model = self.subnet(arch, data)
        info: dict[str, Any] = {"arch": str(arch), "num_classes": data.num_classes, "in_channels": data.in_channels,
                                "stem_stride": self.stem_stride, "supernet_id": self.supernet_id(data),
                                "finetune_epochs": finetune_epochs}
        if finetune_epochs > 0:
            result = train(model, data, self.recipe.replace(epochs=finetune_epochs, steps=None))
            info["finetuned_val_acc"] = float(result.final_val_acc)
        model.eval()
        sd = {k: v.detach().cpu().contiguous(memory_format=torch.contiguous_format)
              for k, v in model.state_dict().items()}
        out.parent.mkdir(parents=True, exist_ok=True)
        with write_output(out, "wb") as f:
            torch.save(sd, f)
        return info


def _train_on_ray(ev: SupernetEvaluator, data: Any, path: Path, key: dict[str, Any]) -> None:
    """Train the supernet as one Ray task (the cluster's CPUs, one task); it writes the same checkpoint file."""
    import ray

    if not ray.is_initialized():
        ray.init(address="auto" if _ray_address() else None, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def job() -> None:
        from nas_harness.data import load_proxy

        train_supernet(ev.new_net(load_proxy(ev.data)), load_proxy(ev.data), ev.recipe, ev.settings.sampling,
                       ev.settings.n_random, ev.settings.distillation, path, key, None,
                       sample_skip=ev.settings.sample_skip)

    ray.get(job.remote())


def _ray_address() -> str | None:
    import os

    return os.environ.get("RAY_ADDRESS") or None
