"""Proxy datasets: a validated config, and the loaded/subsetted/resized tensors the trainer consumes.

``load_proxy(cfg)`` turns a full dataset into the small task a search trial trains on: a seeded stratified
training subset, a validation split held out from the *training* file (the test set is only ever used for
final evaluation), images resized or padded to the proxy resolution with 1 or 3 channels, and per-channel
normalisation statistics computed on the training split.  Results are cached in-process, so every trial of
a study (and every Ray task in a worker) loads and decodes the data once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from nas_harness._config import Bool, ConfigModel, Int, Num, Rules, Text, allowed, bad, inert
from nas_harness.data._raw import RawDataset
from nas_harness.errors import ConfigError, DataError

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "folder", "synthetic")
FITS = ("auto", "resize", "pad")
_CACHE_SIZE = 4
_cache: OrderedDict[tuple[Any, ...], ProxyData] = OrderedDict()
_raw_cache: OrderedDict[tuple[Any, ...], RawDataset] = OrderedDict()
_lock = threading.Lock()


class ProxyConfig(ConfigModel):
    """What data a trial trains on: the ``[data]`` table.  ``train_subset`` (total) and ``per_class`` are
    mutually exclusive.

    ``val_size`` is a count, or a fraction of the training images used (of the subset when one is given);
    the validation images are drawn from the training file and are disjoint from the training subset.
    ``fit`` chooses how images reach ``resolution``: ``auto`` zero-pads when they are at most 8 px smaller
    (28 -> 32 keeps Fashion-MNIST pixels exact) and resizes otherwise.  ``root``, when given, is the only
    place looked in (a named folder that does not hold the data is an error, never skipped).
    """

    dataset: Annotated[Literal["fashion_mnist", "cifar10", "cifar100", "folder", "synthetic"],
                       Field(description="synthetic is for unit tests only")] = "fashion_mnist"
    root: Annotated[Text | None, Field(max_length=4096, description=(
        "applies to every dataset but 'synthetic': the local directory holding the data set, the only place "
        "looked in"))] = None
    allow_download: Annotated[Bool, Field(description=(
        "applies to dataset = 'fashion_mnist' only: fetch the official files (MD5-checked)"))
                              ] = False
    train_subset: Annotated[Int | None, Field(ge=1, le=10**9, description="stratified training subset (total)")] = None
    per_class: Annotated[Int | None, Field(ge=1, le=10**9, description="stratified training subset per class")] = None
    val_size: Annotated[Annotated[Int, Field(ge=1, le=10**9)] | Annotated[Num, Field(gt=0, lt=1)],
                        Field(json_schema_extra=allowed("an integer count >= 1 or a fraction in (0, 1)"),
                              description="validation images held out from the training file")] = 0.1
    resolution: Annotated[Int, Field(ge=8, le=1024, description="image size in px (padded or resized)")] = 32
    channels: Annotated[Literal[1, 3], Field(description="input channels (grey images are repeated for 3)")] = 3
    normalize: Annotated[Bool, Field(description="per-channel mean/std from the training split")] = True
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1, description="subset and validation split")] = 0
    fit: Annotated[Literal["auto", "resize", "pad"], Field(description="how images reach the resolution")] = "auto"

    _inert: ClassVar[Rules] = inert(allow_download=lambda d: d.dataset != "fashion_mnist",
                                    root=lambda d: d.dataset == "synthetic")

    @field_validator("root", mode="before")
    @classmethod
    def _fspath(cls, v: Any) -> Any:
        return os.fspath(v) if isinstance(v, os.PathLike) else v

    @field_validator("val_size", mode="before")
    @classmethod
    def _count_or_fraction(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and v >= 1:
            raise bad("", f"{v!r} is neither a count (write {int(v)}) nor a fraction in (0, 1)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProxyConfig:
        if self.train_subset is not None and self.per_class is not None:
            raise bad("", "train_subset and per_class are mutually exclusive; set one")
        if self.dataset in ("cifar10", "cifar100", "folder") and self.root is None:
            raise bad("root", f"required for dataset {self.dataset!r} (a local directory)")
        return self

    #: Where the data lives and whether it may be fetched: not part of what is measured.
    NOT_COMPARABLE: ClassVar[tuple[str, ...]] = ("root", "allow_download")

    def comparable(self) -> dict[str, Any]:
        """The options that make two runs' data the same experiment (everything but where the files live)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.NOT_COMPARABLE}

    @classmethod
    def from_dict(cls, d: Any, where: str = "data") -> ProxyConfig:
        """Build from a study-file table; unknown keys and bad values raise ConfigError naming the key."""
        return super().from_dict(d, where)


@dataclass
class ProxyData:
    """Loaded proxy task.  Tensors are shared through the cache: treat them as read-only.

    Images are uint8 ``(N, C, H, W)``; ``mean``/``std`` are per-channel, in units of [0, 1] pixel values
    (all-0 / all-1 when ``normalize`` is off), for the trainer's on-device normalisation.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_channels: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    config: ProxyConfig
    source: str = ""
    synthetic: bool = False
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """Stable id of the data content plus proxy options (not of where the files live), for caching."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            opts = self.config.comparable()
            h.update(repr((self.name, self.synthetic, self.num_classes, sorted(opts.items()))).encode())
            for t in (self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y):
                h.update(repr((tuple(t.shape), str(t.dtype))).encode())
                h.update(t.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def summary(self) -> str:
        return (f"{self.name}{' (SYNTHETIC)' if self.synthetic else ''}: train {len(self.train_y)}, "
                f"val {len(self.val_y)}, test {len(self.test_y)}, {self.num_classes} classes, "
                f"{self.in_channels}x{self.resolution}x{self.resolution}")


def _load_raw(cfg: ProxyConfig) -> RawDataset:
    from nas_harness.data.cifar import load_cifar
    from nas_harness.data.fashion_mnist import ENV_VAR, load_fashion_mnist
    from nas_harness.data.folder import load_image_folder
    from nas_harness.data.synthetic import make_synthetic

    size = cfg.resolution if cfg.dataset in ("folder", "synthetic") else None
    key = (cfg.dataset, str(cfg.root), os.environ.get(ENV_VAR), size)
    with _lock:
        if key in _raw_cache:
            _raw_cache.move_to_end(key)
            return _raw_cache[key]
    if cfg.dataset == "fashion_mnist":
        raw = load_fashion_mnist(cfg.root, allow_download=cfg.allow_download)
    elif cfg.dataset in ("cifar10", "cifar100"):
        raw = load_cifar(cfg.dataset, cfg.root)  # type: ignore[arg-type]
    elif cfg.dataset == "folder":
        raw = load_image_folder(cfg.root, size=cfg.resolution)  # type: ignore[arg-type]
    else:
        raw = make_synthetic(size=cfg.resolution)
    with _lock:
        _raw_cache[key] = raw
        while len(_raw_cache) > 2:
            _raw_cache.popitem(last=False)
    return raw


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes proportionally to ``counts`` (largest remainder), never above a count."""
    exact = n * counts / counts.sum()
    alloc = np.minimum(np.floor(exact).astype(np.int64), counts)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while alloc.sum() < n:
        c = order[i % len(order)]
        if alloc[c] < counts[c]:
            alloc[c] += 1
        i += 1
    return alloc


def _stratified(y: np.ndarray, pool: np.ndarray, per_class: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seeded draw of ``per_class[c]`` indices of class c from ``pool`` (sorted index array)."""
    out = [rng.permutation(pool[y[pool] == c])[:k] for c, k in enumerate(per_class)]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def _split(raw: RawDataset, cfg: ProxyConfig) -> tuple[np.ndarray, np.ndarray]:
    y, k = raw.train_y, raw.num_classes
    counts = np.bincount(y, minlength=k)
    n_total = len(y)
    if cfg.per_class is not None:
        n_train = cfg.per_class * k
    else:
        n_train = cfg.train_subset if cfg.train_subset is not None else None
    base = n_train if n_train is not None else n_total
    n_val = cfg.val_size if isinstance(cfg.val_size, (int, np.integer)) else round(cfg.val_size * base)
    n_val = max(int(n_val), 1)
    if n_train is None:
        n_train = n_total - n_val
    if n_train + n_val > n_total or n_train < 1:
        raise ConfigError(f"data: {n_train} training + {n_val} validation images requested but {raw.name} has only "
                          f"{n_total} training images; lower data.train_subset/per_class or data.val_size")
    if cfg.train_subset is not None and n_train < k:
        raise ConfigError(f"data.train_subset = {n_train} is fewer than the {k} classes of {raw.name}: a stratified "
                          f"subset needs at least one image per class (use >= {k}, or per_class)")
    rng = np.random.default_rng(cfg.seed)
    everything = np.arange(n_total)
    val_idx = _stratified(y, everything, _allocate(counts, n_val), rng)
    rest = np.setdiff1d(everything, val_idx, assume_unique=True)
    rest_counts = np.bincount(y[rest], minlength=k)
    if cfg.per_class is not None:
        if (rest_counts < cfg.per_class).any():
            c = int(np.argmin(rest_counts))
            raise ConfigError(f"data.per_class = {cfg.per_class} but class {c} of {raw.name} has only "
                              f"{int(rest_counts[c])} training images left after the validation split")
        want = np.full(k, cfg.per_class, dtype=np.int64)
    else:
        want = _allocate(rest_counts, n_train)
    train_idx = _stratified(y, rest, want, rng)
    return train_idx, val_idx


def _fit_images(x: np.ndarray, cfg: ProxyConfig) -> torch.Tensor:
    """uint8 (N,C,h,w) numpy -> uint8 (N,channels,r,r) tensor; done in chunks to bound float memory."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.shape[1] != cfg.channels:
        if cfg.channels == 3:
            t = t.expand(-1, 3, -1, -1)
        else:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            t = (t.float() * w).sum(1, keepdim=True).round().clamp_(0, 255).to(torch.uint8)
    h, w = t.shape[-2:]
    r = cfg.resolution
    if (h, w) == (r, r):
        return t.contiguous()
    mode = cfg.fit
    if mode == "auto":
        mode = "pad" if h == w and h < r <= h + 8 else "resize"
    if mode == "pad":
        top, left = (r - h) // 2, (r - w) // 2
        out = torch.zeros((t.shape[0], t.shape[1], r, r), dtype=torch.uint8)
        src = t[..., max(-top, 0): max(-top, 0) + min(h, r), max(-left, 0): max(-left, 0) + min(w, r)]
        out[..., max(top, 0): max(top, 0) + src.shape[-2], max(left, 0): max(left, 0) + src.shape[-1]] = src
        return out
    chunks = []
    for i in range(0, t.shape[0], 4096):
        c = t[i: i + 4096].float()
        c = F.interpolate(c, size=(r, r), mode="bilinear", align_corners=False, antialias=r < min(h, w))
        chunks.append(c.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(chunks) if chunks else torch.zeros((0, t.shape[1], r, r), dtype=torch.uint8)


def _cache_key(cfg: ProxyConfig) -> tuple[Any, ...]:
    from nas_harness.data.fashion_mnist import ENV_VAR

    return (tuple(sorted(cfg.to_dict().items(), key=lambda kv: kv[0])), os.environ.get(ENV_VAR))


def content_fingerprint(cfg: ProxyConfig) -> str | None:
    """The content fingerprint of the data ``cfg`` describes (:meth:`ProxyData.fingerprint`: the images and
    labels of every split, not where they live) where the data comes from a folder the user names
    (``data.root``: image folders, CIFAR, a Fashion-MNIST copy); None for the built-in data sets.  The one rule
    by which a study, an ablation and a scaling-curves file put the data's identity into what makes their runs
    comparable (``data.content``): the same keys on other images are other data."""
    if cfg.root is None:
        return None
    return load_proxy(cfg).fingerprint()


def load_proxy(cfg: ProxyConfig | Mapping[str, Any]) -> ProxyData:
    """Load (or fetch from the in-process cache) the proxy task described by ``cfg``."""
    if not isinstance(cfg, ProxyConfig):
        cfg = ProxyConfig.from_dict(cfg)
    key = _cache_key(cfg)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    raw = _load_raw(cfg)
    train_idx, val_idx = _split(raw, cfg)
    train_x = _fit_images(raw.train_x[train_idx], cfg)
    val_x = _fit_images(raw.train_x[val_idx], cfg)
    test_x = _fit_images(raw.test_x, cfg)
    if len(test_x) == 0:
        raise DataError(f"{raw.source}: {raw.name} has an empty test split")
    c = cfg.channels
    if cfg.normalize:
        flat = train_x.transpose(0, 1).reshape(c, -1).double() / 255.0
        mean = tuple(float(m) for m in flat.mean(1))
        std = tuple(max(float(s), 1e-3) for s in flat.std(1))
    else:
        mean, std = (0.0,) * c, (1.0,) * c
    data = ProxyData(
        name=raw.name, num_classes=raw.num_classes, in_channels=c, resolution=cfg.resolution,
        train_x=train_x, train_y=torch.from_numpy(raw.train_y[train_idx].copy()),
        val_x=val_x, val_y=torch.from_numpy(raw.train_y[val_idx].copy()),
        test_x=test_x, test_y=torch.from_numpy(raw.test_y.copy()),
        mean=mean, std=std, config=cfg, source=raw.source, synthetic=raw.synthetic,
    )
    with _lock:
        _cache[key] = data
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    """Forget cached datasets (tests, or to release memory between studies)."""
    with _lock:
        _cache.clear()
        _raw_cache.clear()
