"""CPU training kernels, attached to a built model by one transform.

:func:`~nas_harness.model.build_model` returns stock PyTorch modules (torchvision's module tree).
:func:`accelerate` swaps, once and in place, the classes of its conv→BN→act blocks, SE blocks, depthwise
convolutions and activations for fast ones that compute the same function with fewer memory passes on
CPU: fused BatchNorm+activation (exact running-statistics updates), a two-pass SE backward, a depthwise
weight gradient, 1×1 convolutions on tiny maps as matmuls, out-of-place SiLU.  Parameters, buffers and
``state_dict`` keys are untouched; :func:`deaccelerate` swaps the stock classes back.

The proxy trainer applies it for the duration of :func:`nas_harness.train.train` on CPU when
``train.cpu_kernels = "auto"`` (the default) and :func:`available`, and records what it used in
``TrainResult.cpu_kernels``.  The C sources (``native/*.c``) are compiled on first use with the machine's
C compiler; with no compiler, or ``NAS_HARNESS_NATIVE=0``, :func:`available` is False and the stock ops run.

How the kernels work and what they gain: ``docs/kernels.md``.
"""

from nas_harness.kernels._native import ENV_VAR, available, unavailable_reason
from nas_harness.kernels._transform import accelerate, deaccelerate, is_accelerated

__all__ = ["ENV_VAR", "accelerate", "available", "deaccelerate", "is_accelerated", "unavailable_reason"]
