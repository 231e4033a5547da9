"""Measuring latency: one module (a whole network or one block) timed on a named device.

Hygiene, the same for a block of the lookup table and for a whole network:

- eval mode under :func:`torch.inference_mode` (the deployed forward: no autograd bookkeeping, BN folded to
  its running statistics), float32;
- on the CPU a fixed intra-op thread count (:func:`torch.set_num_threads`), restored afterwards;
- ``warmup`` untimed calls (allocator, oneDNN primitive caches, lazy kernel compilation), then ``repeats``
  timed calls, each timed on its own: a round's figure is their **median**, its spread their inter-quartile
  range;
- ``rounds`` such rounds, **interleaved** over everything measured together (a table fill, the networks of a
  fit or a benchmark), each item's **fastest round** kept.  A shared machine's speed changes within seconds:
  on this VM a fixed 256x256 matmul took 245-630 us (50-call medians, 2 s apart, load average 0.8), so
  consecutive calls all land in one fast or slow phase and a single round is off by up to 2.5x.  Interference
  only ever adds time, and rounds of one item minutes apart rarely all land in slow phases;
- the clock (:func:`clock_for`): on the CPU with one thread, the calling thread's CPU time
  (``CLOCK_THREAD_CPUTIME_ID``, user + system): on an idle core it equals the wall time of the call, and on a
  shared machine it is not inflated by the scheduler handing the core to another process mid-call (measured
  here under a load average of 4 on 2 cores: B0 at 224 px took 38-53 ms of wall time per call and a steady
  25.6-26.3 ms of CPU time).  With several threads the work runs on other threads too, so the wall clock is
  used (and the machine must be quiet).  The wall-clock median is recorded beside it either way;
- on CUDA each call is timed with :class:`torch.cuda.Event` pairs and the device is synchronised, so
  asynchronous launches are not mistaken for finished work;
- one memory format per table (:func:`choose_memory_format`: channels_last and contiguous tried once on a
  reference network, the faster kept and recorded), input and weights converted to it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from nas_harness.errors import ConfigError
from nas_harness.latency.config import MEMORY_FORMATS, LatencySettings, check_device

CLOCKS = ("thread_cpu", "wall", "cuda_events")


@dataclass(frozen=True)
class Measurement:
    """Median and inter-quartile range (ms) of ``repeats`` timed calls by ``clock``, and how they were made;
    ``wall_median_ms`` is the median by the wall clock (the same as ``median_ms`` unless clock is thread_cpu)."""

    median_ms: float
    iqr_ms: float
    repeats: int
    warmup: int
    device: str
    threads: int | None
    memory_format: str
    batch: int
    clock: str = "wall"
    wall_median_ms: float | None = None
    round_medians_ms: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty list."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@contextlib.contextmanager
def thread_scope(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads (None: leave as is); the previous count is restored."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_format(name: str) -> Any:
    import torch

    if name not in MEMORY_FORMATS:
        raise ConfigError(f"latency.memory_format = {name!r} is invalid: allowed: {', '.join(MEMORY_FORMATS)}")
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def clock_for(device: str, threads: int | None) -> str:
    """``cuda_events`` on CUDA, ``thread_cpu`` on the CPU with one thread, else ``wall`` (module docstring)."""
    if device.startswith("cuda"):
        return "cuda_events"
    return "thread_cpu" if threads == 1 else "wall"


def time_calls(fn: Callable[[], Any], device: str, repeats: int, warmup: int, clock: str = "wall"
               ) -> tuple[list[float], list[float]]:
    """Milliseconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones: (by ``clock``, by the
    wall clock)."""
    import torch

    if repeats < 1 or warmup < 0:
        raise ConfigError(f"latency: repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if clock not in CLOCKS or (clock == "cuda_events") != device.startswith("cuda"):
        raise ConfigError(f"latency: clock {clock!r} does not apply to device {device!r}")
    for _ in range(warmup):
        fn()
    if clock == "cuda_events":
        torch.cuda.synchronize(device)
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in pairs:
            start.record()
            fn()
            end.record()
            end.synchronize()
        samples = [float(start.elapsed_time(end)) for start, end in pairs]
        return samples, samples
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn()
        c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
        wall.append((t1 - t0) / 1e6)
        cpu.append((c1 - c0) / 1e6)
    return (cpu if clock == "thread_cpu" else wall), wall


def best_round(rounds: list[Measurement]) -> Measurement:
    """The fastest round (lowest median), with every round's median recorded."""
    best = min(rounds, key=lambda m: m.median_ms)
    return replace(best, round_medians_ms=tuple(m.median_ms for m in rounds))


def measure_module(module: Any, input_shape: tuple[int, ...], settings: LatencySettings,
                   memory_format: str, rounds: int = 1) -> Measurement:
    """Time ``module`` (set to eval mode, moved to the device and memory format) on a random input: ``rounds``
    rounds of ``settings.repeats`` calls back to back, the fastest round kept."""
    import torch

    device = check_device(settings.device)
    fmt = torch_format(memory_format)
    module = module.eval().to(device)
    if len(input_shape) == 4:
        module = module.to(memory_format=fmt)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*input_shape, generator=gen).to(device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=fmt)
    threads = settings.threads if device == "cpu" else None
    clock = clock_for(device, threads)
    out = []
    with thread_scope(threads), torch.inference_mode():
        for r in range(max(1, rounds)):
            samples, wall = time_calls(lambda: module(x), device, settings.repeats, settings.warmup if r == 0 else 1,
                                       clock)
            out.append(Measurement(median_ms=quantile(samples, 0.5),
                                   iqr_ms=quantile(samples, 0.75) - quantile(samples, 0.25), repeats=len(samples),
                                   warmup=settings.warmup, device=device, threads=threads,
                                   memory_format=memory_format, batch=settings.batch, clock=clock,
                                   wall_median_ms=quantile(wall, 0.5)))
    return best_round(out)


def measure_interleaved(items: list[Callable[[], tuple[Any, tuple[int, ...]]]], settings: LatencySettings,
                        memory_format: str, progress: Callable[[int, int], None] | None = None) -> list[Measurement]:
    """Measure several modules in ``settings.rounds`` rounds over all of them (module docstring); ``items`` build
    (module, input shape) afresh each round, so only one is in memory at a time."""
    rounds: list[list[Measurement]] = [[] for _ in items]
    total, done = settings.rounds * len(items), 0
    for _ in range(settings.rounds):
        for i, make in enumerate(items):
            module, shape = make()
            rounds[i].append(measure_module(module, shape, settings, memory_format))
            done += 1
            if progress is not None:
                progress(done, total)
    return [best_round(r) for r in rounds]


def network_module(arch: Any, settings: LatencySettings) -> tuple[Any, tuple[int, ...]]:
    """The deployed network of ``arch`` and its input shape (see :func:`measure_network`)."""
    import torch

    from nas_harness.model import build_model

    with thread_scope(1), torch.random.fork_rng(devices=[]):  # the caller's RNG state is left as it was
        torch.manual_seed(0)
        model = build_model(arch, num_classes=settings.num_classes, in_channels=settings.in_channels)
    r = settings.resolution
    return model, (settings.batch, settings.in_channels, r, r)


def measure_network(arch: Any, settings: LatencySettings, memory_format: str) -> Measurement:
    """End-to-end latency of the deployed network of ``arch`` (``build_model`` in eval mode: 3-channel input at
    ``settings.resolution`` px, the arch's own stem stride, ``settings.num_classes`` outputs), in
    ``settings.rounds`` rounds back to back (use :func:`measure_interleaved` for several networks)."""
    model, shape = network_module(arch, settings)
    return measure_module(model, shape, settings, memory_format, settings.rounds)


def choose_memory_format(settings: LatencySettings, reference: Any = None) -> tuple[str, dict[str, float]]:
    """The faster memory format for this device: ``reference`` (default EfficientNet-B0) measured both ways at
    the settings' resolution and batch.  Returns the name and both medians."""
    if settings.memory_format != "auto":
        return settings.memory_format, {}
    if reference is None:
        from nas_harness.presets import efficientnet_b0

        reference = efficientnet_b0()
    times = {fmt: measure_network(reference, settings, fmt).median_ms for fmt in MEMORY_FORMATS}
    return min(times, key=lambda f: times[f]), times
