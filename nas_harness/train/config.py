"""Training recipe for one proxy trial: the ``[train]`` table of study and ablation files."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nas_harness._config import Bool, ConfigModel, Int, Num, Rules, Text, allowed, bad, distinct, inert

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "onecycle", "constant")
AMP = ("auto", "bf16", "off")
AUGMENTS = ("crop", "flip", "cutout")
CPU_KERNELS = ("auto", "off")
DEFAULT_EPOCHS = 2.0
_DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d{1,3})$"


class TrainConfig(ConfigModel):
    """Proxy-training recipe.  The budget is ``epochs`` (may be fractional) or ``steps``, not both;
    with neither, ``DEFAULT_EPOCHS``.

    Defaults are the CPU proxy recipe measured in the README: SGD-Nesterov, cosine with a short warm-up,
    label smoothing 0.1, flip only (random crops slow short proxies down: 0.50 vs 0.69 val acc in a
    62-step test; use ``augment=['crop', 'flip']`` for longer runs).  ``bn_recalibrate`` batches re-estimate
    BatchNorm statistics before every evaluation, so even a few-hundred-step run is evaluated with valid
    statistics.  ``zero_init_residual`` zeroes the last BN scale of every residual MBConv branch at the start
    (blocks start as identities; measured +7 points after 60 steps on Fashion-MNIST).  ``crop_padding``
    defaults to resolution // 8 (4 px at 32 px).

    ``threads``: CPU threads of the training process.  Float reductions depend on the thread count, so it is
    part of the recipe: an integer gives the same numbers whatever else runs on the machine.  ``None`` (the
    default) leaves PyTorch's setting; a search study or ablation fixes it once, records it, and reuses it on
    resume.  ``"auto"`` (opt-in) uses the cores other work leaves idle *right now*: faster on a shared box,
    but the numbers then depend on the load (the count used is recorded with each trial).
    ``cpu_kernels``: ``"auto"`` trains through the package's fused CPU kernels where they apply
    (:mod:`nas_harness.kernels`), ``"off"`` uses stock PyTorch modules only.
    """

    epochs: Annotated[Num | None, Field(gt=0, le=100_000, description="budget in epochs (fractional ok)")] = None
    steps: Annotated[Int | None, Field(ge=1, le=10**9, description="budget in optimiser steps")] = None
    batch_size: Annotated[Int, Field(ge=1, le=65_536, description="training batch size")] = 128
    optimizer: Annotated[Literal["sgd", "adamw", "rmsprop"], Field(description="sgd = SGD with Nesterov momentum")
                         ] = "sgd"
    lr: Annotated[Num, Field(gt=0, le=1e12, description="peak learning rate")] = 0.1
    weight_decay: Annotated[Num, Field(ge=0, le=10, description="not applied to BN parameters and biases")] = 5e-5
    momentum: Annotated[Num, Field(ge=0, lt=1, description="applies to optimizer = 'sgd' or 'rmsprop' only")] = 0.9
    schedule: Annotated[Literal["cosine", "onecycle", "constant"], Field(description="learning-rate schedule")
                        ] = "cosine"
    warmup_epochs: Annotated[Num, Field(ge=0, le=100_000, description="linear warm-up (epochs)")] = 0.2
    label_smoothing: Annotated[Num, Field(ge=0, lt=1, description="cross-entropy label smoothing")] = 0.1
    grad_clip: Annotated[Num | None, Field(gt=0, le=1e6, json_schema_extra=allowed("a number > 0, or omit"),
                                                  description="clip the gradient norm to this")] = None
    amp: Annotated[Literal["auto", "bf16", "off"], Field(description="auto = bf16 autocast on CUDA with bf16")] = "auto"
    channels_last: Annotated[Literal["auto"] | Bool, Field(json_schema_extra=allowed("auto, true, false"),
                                                           description="memory format of activations")] = "auto"
    compile: Annotated[Bool, Field(description="torch.compile the model (pays off only for long trials)")] = False
    device: Annotated[Text, Field(pattern=_DEVICE_PATTERN, json_schema_extra=allowed("auto, cpu, cuda, cuda:<index>"),
                                    description="auto = first CUDA device, else CPU")] = "auto"
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1, description="initial weights, data order, augmentation")] = 0
    bn_recalibrate: Annotated[Int, Field(ge=0, le=10_000, description=(
        "training batches that re-estimate BN statistics before every evaluation"))] = 4
    bn_momentum: Annotated[Num | None, Field(gt=0, le=1, json_schema_extra=allowed("a number in (0, 1], or omit"),
                                                        description="BN momentum (omit: the model's)")] = None
    augment: Annotated[tuple[Literal["crop", "flip", "cutout"], ...], Field(max_length=3, description=(
        "batched augmentations: crop (padded random crop), flip, cutout"))] = ("flip",)
    crop_padding: Annotated[Int | None, Field(ge=0, le=512, json_schema_extra=allowed("an integer >= 0, or omit"),
                                              description="applies with augment 'crop' only: padding in px (omit: "
                                                          "resolution // 8)")] = None
    zero_init_residual: Annotated[Bool, Field(description="zero the last BN scale of each residual branch")] = True
    eval_batch_size: Annotated[Int, Field(ge=1, le=65_536, description="batch size of evaluation")] = 512
    threads: Annotated[Annotated[Int, Field(ge=1, le=1024)] | Literal["auto"] | None,
                       Field(json_schema_extra=allowed("an integer >= 1, 'auto' (load-dependent), or omit"),
                             description="CPU threads (fixed per study when omitted; see the class doc)")] = None
    cpu_kernels: Annotated[Literal["auto", "off"], Field(description="fused CPU training kernels where they apply")
                           ] = "auto"

    _inert: ClassVar[Rules] = inert(momentum=lambda t: t.optimizer == "adamw",
                                    crop_padding=lambda t: "crop" not in t.augment)

    @field_validator("augment", mode="before")
    @classmethod
    def _list_to_tuple(cls, v: Any) -> Any:
        return distinct(v, "augmentations")

    @model_validator(mode="before")
    @classmethod
    def _default_budget(cls, d: Any) -> Any:
        if isinstance(d, dict) and d.get("epochs") is None and d.get("steps") is None:
            d = {**d, "epochs": DEFAULT_EPOCHS}
        return d

    @model_validator(mode="after")
    def _one_budget(self) -> TrainConfig:
        if self.epochs is not None and self.steps is not None:
            raise bad("", "epochs and steps are mutually exclusive; set one (train.epochs or train.steps)")
        return self

    #: Keys that change how fast a run goes, not what it measures.
    NOT_COMPARABLE: ClassVar[tuple[str, ...]] = ("device", "compile", "eval_batch_size")

    def comparable(self, *, seed: bool = True) -> dict[str, Any]:
        """The recipe keys that make two runs the same experiment (``seed=False``: the seed is set per run, as in
        confirm, fidelity and ablations, so it is left out)."""
        drop = self.NOT_COMPARABLE if seed else (*self.NOT_COMPARABLE, "seed")
        return {k: v for k, v in self.to_dict().items() if k not in drop}

    def planned_epochs(self, n_train: int) -> float:
        """The budget in epochs over ``n_train`` training images (fractional for a step budget), so trials
        stopped early can be told apart from finished ones."""
        if self.epochs is not None:
            return float(self.epochs)
        return round(int(self.steps or 0) * int(self.batch_size) / max(1, n_train), 4)

    @classmethod
    def from_dict(cls, d: Any, where: str = "train") -> TrainConfig:
        """Build from a study-file table; give ``epochs`` or ``steps`` (neither: the default epochs)."""
        return super().from_dict(d, where)
