"""Resources checked up front: what a trial asks for against what this machine or Ray cluster has.

An impossible request (a GPU fraction where no GPU exists, more CPUs per trial than any node has, a CUDA
device on a CPU-only machine) is a one-line :class:`~nas_harness.errors.ConfigError` naming the key, raised
before anything is written; otherwise Ray would queue the trial forever without a word.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nas_harness.errors import ConfigError


@dataclass(frozen=True)
class NodeResources:
    cpus: float
    gpus: float


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cluster_nodes(address: str | None, num_cpus: int | None = None) -> list[NodeResources]:
    """The nodes trials can run on: a running/joined Ray cluster's alive nodes, or this machine."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        from nas_harness.backends.ray import probe_address

        probe_address(address)  # a dead head is one line within RAY_PROBE_TIMEOUT_S, whatever Ray is running
    if address is not None and not ray.is_initialized():
        from nas_harness.backends.ray import ensure_ray

        try:
            ensure_ray(address)
        except ConfigError:
            raise
        except Exception as exc:  # unreachable head, wrong token
            raise ConfigError(f"ray.address: cannot join the Ray cluster at {address!r}: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if ray.is_initialized():
        out = []
        for node in ray.nodes():
            if node.get("Alive"):
                res = node.get("Resources", {})
                out.append(NodeResources(float(res.get("CPU", 0)), float(res.get("GPU", 0))))
        return out
    return [NodeResources(float(num_cpus or os.cpu_count() or 1), float(_local_gpus()))]


def check_device(device: str, where: str = "train.device") -> None:
    """A CUDA device asked for where there is none (local runs)."""
    if device.startswith("cuda"):
        gpus = _local_gpus()
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= gpus:
            raise ConfigError(f"{where} = {device!r} but this machine has {gpus or 'no'} CUDA device(s); "
                              "use 'auto' or 'cpu'")


def check_ray_request(cpus: float, gpus: float, device: str, nodes: list[NodeResources], where: str = "ray") -> None:
    """A Ray trial's request against the cluster's nodes (one trial runs on one node)."""
    if not nodes:
        raise ConfigError(f"{where}: the Ray cluster has no alive node")
    best_cpu = max(n.cpus for n in nodes)
    total_gpu = sum(n.gpus for n in nodes)
    if cpus > best_cpu:
        raise ConfigError(f"{where}.cpus_per_trial = {cpus:g} but the largest node has {best_cpu:g} CPUs "
                          f"({len(nodes)} node(s)); lower --cpus-per-trial")
    if gpus > 0 and total_gpu == 0:
        raise ConfigError(f"{where}.gpus_per_trial = {gpus:g} but the Ray cluster has no GPU ({len(nodes)} "
                          "node(s)); set --gpus-per-trial 0, or join a cluster with GPUs (--ray-address)")
    if gpus > max(n.gpus for n in nodes):
        raise ConfigError(f"{where}.gpus_per_trial = {gpus:g} but no node has that many GPUs (most on one node: "
                          f"{max(n.gpus for n in nodes):g}); a trial runs on one node")
    if gpus == 0 and device.startswith("cuda"):
        raise ConfigError(f"train.device = {device!r} but {where}.gpus_per_trial = 0: Ray hides the GPUs from "
                          "such trials; set --gpus-per-trial (e.g. 0.25) or train.device = 'auto'")


def check_resources(cfg: Any) -> None:
    """Check a study's or ablation's request (``cfg.run.backend``, ``cfg.ray``, ``cfg.train.device``)."""
    device = cfg.train.device
    if cfg.run.backend == "local":
        check_device(device)
        return
    nodes = cluster_nodes(cfg.ray.address or None, cfg.ray.num_cpus or None)
    check_ray_request(cfg.ray.cpus_per_trial, cfg.ray.gpus_per_trial, device, nodes)


__all__ = ["NodeResources", "check_device", "check_ray_request", "check_resources", "cluster_nodes"]
