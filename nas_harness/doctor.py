"""``nas-harness doctor``: what this machine can do for the harness, and the GPU check in one command.

* :func:`environment` (always, seconds): Python/torch/CUDA, the proxy data, the C compiler behind the CPU
  kernels, Ray, the PostgreSQL driver and server binaries, free disk.
* :func:`gpu_check` (``--gpu``, a few minutes on one GPU): trains on CUDA with bf16 autocast and channels_last and
  compares accuracy with the CPU path; runs ``bench --suite trainer`` on the GPU (target: >= 3x the
  conventional pipeline with pinned memory and loader workers); runs the quickstart on the GPU; runs 4 Ray
  trials of ``studies/gpu_fashion_mnist.toml`` at 0.25 GPU each and reports how many ran at once, the GPU
  utilisation and trials per GPU-hour; times ``torch.compile`` against eager for one arch (does it pay off within
  one trial?).  Every check is independent: one that fails is reported and the others still run.  The result
  is printed as one table and written as JSON.

``gpu_check(device="cpu", quick=True)`` runs the same code at toy sizes without a GPU (Ray gets logical GPUs),
which is how the tests keep the GPU path from rotting between the rare runs on a GPU machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nas_harness._config import write_text
from nas_harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"


# --------------------------------------------------------------------------------------------- environment
def environment() -> dict[str, Any]:
    """Facts about this machine that decide what the harness can do here (no training)."""
    import platform

    import torch

    from nas_harness.data import find_fashion_mnist

    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "fashion_mnist": str(find_fashion_mnist() or "not found (apt-get install dataset-fashion-mnist)"),
        "c_compiler": shutil.which(os.environ.get("CC", "") or "gcc") or shutil.which("cc") or "none",
        "free_disk_gb": round(shutil.disk_usage(Path.cwd()).free / 2**30, 1),
    }
    for module, key in (("ray", "ray"), ("psycopg2", "postgres_driver"), ("optuna", "optuna")):
        try:
            mod = __import__(module)
            out[key] = getattr(mod, "__version__", "installed")
        except ImportError:
            out[key] = "not installed"
    pg = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    out["postgres_server"] = str(pg) if pg else "not installed (apt-get install postgresql)"
    return out


# --------------------------------------------------------------------------------------------- GPU check
class _GpuSampler:
    """Samples GPU utilisation (%) with nvidia-smi every ``period`` seconds while active."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> _GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(max(float(x) for x in out.split()))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_util_mean_pct": None, "gpu_util_max_pct": None}
        return {"gpu_util_mean_pct": round(sum(self.samples) / len(self.samples), 1),
                "gpu_util_max_pct": max(self.samples)}


def _proxy(quick: bool) -> Any:
    """Fashion-MNIST (10k images, 28 px) for the real check; a toy synthetic set for ``quick`` dry runs."""
    from nas_harness.data import ProxyConfig, find_fashion_mnist

    if quick or find_fashion_mnist() is None:
        return ProxyConfig(dataset="synthetic", val_size=0.2, resolution=16, channels=3)
    return ProxyConfig(dataset="fashion_mnist", train_subset=10_000, val_size=1000, resolution=28, channels=1)


def _arch(quick: bool) -> Any:
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch

    return scale_arch(efficientnet_b0(), width=0.25, depth=0.5) if quick else scale_arch(efficientnet_b0(), width=0.5)


def check_cuda_training(device: str, quick: bool) -> dict[str, Any]:
    """B0-w0.5 trained with the same seed on ``device`` (bf16 autocast, channels_last) and on the CPU."""
    import torch

    from nas_harness.data import load_proxy
    from nas_harness.model import build_model
    from nas_harness.train import TrainConfig, train

    data = load_proxy(_proxy(quick))
    arch = _arch(quick)
    res = {}
    for key, where, amp in (("device", device, "auto"), ("cpu", "cpu", "off")):
        torch.manual_seed(0)
        model = build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels, stem_stride=1)
        cfg = TrainConfig(epochs=1 if quick else 2, device=where, amp=amp, channels_last="auto", threads=None)
        r = train(model, data, cfg)
        res[key] = {"val_acc": r.final_val_acc, "images_per_s": r.images_per_s, "device": r.device,
                    "wall_s": round(r.wall_time_s, 2)}
    gap = abs(res["device"]["val_acc"] - res["cpu"]["val_acc"])
    tol = 0.03  # bf16 and a different kernel order change the trajectory, not the quality
    return {"ok": gap <= tol, **res, "abs_val_acc_gap": round(gap, 4), "tolerance": tol,
            "summary": f"val acc {res['device']['val_acc']:.3f} on {res['device']['device']} (bf16) vs "
                       f"{res['cpu']['val_acc']:.3f} on CPU (gap {gap:.3f}, tolerance {tol})"}


def check_trainer_bench(device: str, quick: bool) -> dict[str, Any]:
    from nas_harness.bench import run_suites

    with _device_env(device):
        res = run_suites(["trainer"], quick=quick)["suites"]["trainer"]
    target = 3.0 if device.startswith("cuda") else 2.0
    return {"ok": res["ratio"] >= target, "target": target, **{k: res[k] for k in (
        "ratio", "trainer_images_per_s", "conventional_images_per_s", "device") if k in res},
        "summary": f"trainer {res['trainer_images_per_s']:.0f} img/s vs conventional "
                   f"{res['conventional_images_per_s']:.0f} img/s: {res['ratio']:.2f}x (target >= {target:g}x)"}


def _study(file: str, overrides: dict[str, Any], drop: tuple[str, ...] = ()) -> Any:
    """A shipped study file with dotted-key overrides applied and the ``drop`` keys removed."""
    from nas_harness._config import read_toml
    from nas_harness.study.config import apply_overrides, validate

    d = read_toml(STUDIES / file, "study file")
    for dotted in drop:
        *parents, last = dotted.split(".")
        node = d
        for part in parents:
            node = node.get(part, {})
        node.pop(last, None)
    apply_overrides(d, overrides)
    return validate(d)


def check_quickstart(device: str, quick: bool, work: Path) -> dict[str, Any]:
    from nas_harness.study.search import run_search

    n = 4 if quick else 14
    cfg = _study("quickstart.toml", {"name": "doctor-quickstart", "run.results_dir": str(work),
                                     "run.n_trials": n, "run.progress": False, "run.plots": False,
                                     "train.device": device, "run.timeout_s": 0})
    with _GpuSampler() as gpu:
        s = run_search(cfg, log=lambda m: None)
    done = s.n_complete + s.n_pruned
    return {"ok": done == n and s.n_fail == 0, "trials": done, "failed": s.n_fail, "wall_s": round(s.wall_s, 1),
            "trials_per_hour": round(3600 * done / max(s.wall_s, 1e-9), 1), **gpu.summary(),
            "summary": f"{done}/{n} quickstart trials in {s.wall_s:.0f} s ({3600 * done / max(s.wall_s, 1e-9):.0f}"
                       f"/h) on {device}"}


def check_ray_fractional(device: str, quick: bool, work: Path) -> dict[str, Any]:
    """4 trials of the GPU study at 0.25 GPU each: how many ran at once, utilisation, trials per GPU-hour."""
    import ray

    from nas_harness.backends.ray import ensure_ray
    from nas_harness.study.search import run_search

    logical = not device.startswith("cuda")
    started = ensure_ray(num_cpus=max(4, os.cpu_count() or 1), num_gpus=1 if logical else None)
    overrides: dict[str, Any] = {"name": "doctor-ray", "run.results_dir": str(work), "run.n_trials": 4,
                                 "run.progress": False, "run.plots": False, "ray.gpus_per_trial": 0.25,
                                 "ray.cpus_per_trial": 0.25 if quick else 1.0, "ray.scheduler": "none",
                                 "train.device": "cpu" if logical else "auto"}
    if quick:
        overrides.update({"train.epochs": 1, "data.val_size": 500, "data.train_subset": 2000, "base_width": 0.25,
                          "base_depth": 0.5, "trial.evaluate_test": False})
    # throughput, not early stopping: no scheduler (and so none of its settings)
    cfg = _study("gpu_fashion_mnist.toml", overrides, drop=("ray.grace_epochs", "ray.reduction_factor"))
    with _GpuSampler() as gpu:
        s = run_search(cfg, log=lambda m: None)
    if started:
        ray.shutdown()
    done = s.n_complete + s.n_pruned
    per_gpu_hour = round(3600 * done / max(s.wall_s, 1e-9), 1)  # one GPU in use
    return {"ok": done == 4 and s.max_concurrent == 4, "trials": done, "max_concurrent": s.max_concurrent,
            "wall_s": round(s.wall_s, 1), "trials_per_gpu_hour": per_gpu_hour, "logical_gpus": logical,
            **gpu.summary(),
            "summary": f"{done} trials at 0.25 GPU, {s.max_concurrent} at once, {per_gpu_hour:.0f} trials/GPU-hour"
                       + (f", GPU util mean {gpu.summary()['gpu_util_mean_pct']}%" if gpu.samples else "")}


def check_compile(device: str, quick: bool) -> dict[str, Any]:
    """Eager vs ``torch.compile`` for one arch: steady img/s, compile time, and the steps it takes to pay off."""
    import torch

    from nas_harness.data import load_proxy
    from nas_harness.model import build_model
    from nas_harness.train import TrainConfig, train

    data = load_proxy(_proxy(quick))
    arch = _arch(quick)
    steps = 10 if quick else 60
    out: dict[str, Any] = {}
    for name, comp in (("eager", False), ("compiled", True)):
        torch.manual_seed(0)
        model = build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels, stem_stride=1)
        cfg = TrainConfig(steps=steps, device=device, compile=comp, bn_recalibrate=0, threads=None)
        first = train(model, data, cfg)  # includes compilation for the compiled model
        again = train(model, data, cfg)  # steady state (compiled code cached)
        out[name] = {"first_wall_s": round(first.wall_time_s, 2), "steady_images_per_s": round(again.images_per_s, 1)}
    e, c = out["eager"], out["compiled"]
    step_e = 128 / max(e["steady_images_per_s"], 1e-9)
    step_c = 128 / max(c["steady_images_per_s"], 1e-9)
    overhead = max(0.0, c["first_wall_s"] - e["first_wall_s"])
    breakeven = int(overhead / (step_e - step_c)) if step_c < step_e else None
    return {"ok": True, **out, "speedup": round(c["steady_images_per_s"] / max(e["steady_images_per_s"], 1e-9), 3),
            "compile_overhead_s": round(overhead, 1), "breakeven_steps": breakeven,
            "summary": f"compile {c['steady_images_per_s'] / max(e['steady_images_per_s'], 1e-9):.2f}x eager steady; "
                       f"{overhead:.0f} s to compile; pays off after "
                       + (f"{breakeven} steps" if breakeven is not None else "never (not faster)")}


@contextlib.contextmanager
def _device_env(device: str) -> Iterator[None]:
    """Pin ``auto`` to the checked device for code that resolves it itself (the bench)."""
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":")[1]
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "cuda_training": check_cuda_training, "trainer_bench": check_trainer_bench, "quickstart": check_quickstart,
    "ray_fractional_gpu": check_ray_fractional, "compile_vs_eager": check_compile,
}


def gpu_check(device: str = "cuda", quick: bool = False, log: Callable[[str], None] = print,
              only: list[str] | None = None) -> dict[str, Any]:
    """Run the GPU checks (see the module docstring); each one's failure is recorded, never fatal."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device here (torch {torch.__version__}, "
                          f"torch.cuda.is_available() is False); the GPU check needs a GPU machine")
    unknown = sorted(set(only or []) - set(CHECKS))
    if unknown:
        raise ConfigError(f"--only {unknown[0]!r} is not a check; allowed: {', '.join(CHECKS)}")
    report: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": device,
                              "quick": quick, "environment": environment(), "checks": {}}
    with tempfile.TemporaryDirectory(prefix="nas-doctor-") as tmp:
        for name, fn in CHECKS.items():
            if only and name not in only:
                continue
            log(f"doctor: {name} ...")
            t0 = time.perf_counter()
            try:
                kwargs: dict[str, Any] = {"device": device, "quick": quick}
                if "work" in fn.__code__.co_varnames:
                    kwargs["work"] = Path(tmp) / name
                res = fn(**kwargs)
            except Exception as exc:  # a broken check is a result, the others go on
                res = {"ok": False, "summary": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                       "traceback": traceback.format_exc()[-3000:]}
            res["time_s"] = round(time.perf_counter() - t0, 1)
            report["checks"][name] = res
            log(f"doctor: {name}: {'ok' if res.get('ok') else 'FAILED'} ({res['time_s']} s): {res['summary']}")
    return report


def write_json(report: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(report, indent=2, default=str) + "\n")
    return out


__all__ = ["CHECKS", "environment", "gpu_check", "write_json"]


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(environment(), indent=2), file=sys.stdout)
