"""The ``[supernet]`` table: how the study's supernet is trained and how a subnet is scored."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from nas_harness._config import Bool, ConfigModel, Int, Num, Rules, allowed, bad, inert

DEFAULT_EPOCHS = 10.0


class SupernetConfig(ConfigModel):
    """``[supernet]`` (with ``[evaluator] kind = "supernet"``).

    The supernet is trained once per study with the study's ``[train]`` recipe (optimizer, schedule, weight decay,
    augmentation, label smoothing, threads) except for the budget and the keys given here.  ``sampling``:
    ``uniform`` = single-path one-shot (Guo et al., SPOS, 2020: one uniformly random subnet per step);
    ``sandwich`` = the largest, the smallest and ``n_random`` random subnets per step, gradients summed (Yu et
    al., BigNAS, 2020), the smaller ones learning from the largest's soft labels when ``distillation`` is on
    (in-place distillation).  Scoring a subnet re-estimates its BatchNorm statistics on ``bn_batches`` fixed,
    seeded training batches of ``bn_batch_size`` images, then measures accuracy on the validation split.
    ``sample_skip`` is an option of the sampler: the residual skip of each stage is drawn on/off as well.
    """

    epochs: Annotated[Num | None, Field(gt=0, le=100_000, description="supernet training budget in epochs "
                                        f"(default {DEFAULT_EPOCHS:g})")] = None
    steps: Annotated[Int | None, Field(ge=1, le=10**9, description="supernet training budget in optimiser steps "
                                       "(instead of epochs)")] = None
    sampling: Annotated[Literal["uniform", "sandwich"], Field(description=(
        "uniform: one random subnet per step (SPOS); sandwich: largest + smallest + n_random per step"))] = "uniform"
    n_random: Annotated[Int, Field(ge=0, le=16, description="applies with sampling = 'sandwich' only: random "
                                   "subnets per step besides the largest and the smallest")] = 2
    distillation: Annotated[Bool, Field(description="applies with sampling = 'sandwich' only: smaller subnets "
                                        "learn from the largest's soft labels (in-place distillation)")] = True
    lr: Annotated[Num | None, Field(gt=0, le=1e12, json_schema_extra=allowed("a number > 0, or omit"),
                                    description="peak learning rate (omit: the [train] recipe's)")] = None
    batch_size: Annotated[Int | None, Field(ge=1, le=65_536, json_schema_extra=allowed("an integer >= 1, or omit"),
                                            description="training batch size (omit: the [train] recipe's)")] = None
    warmup_epochs: Annotated[Num | None, Field(ge=0, le=100_000, json_schema_extra=allowed("a number >= 0, or omit"),
                                               description="linear warm-up (omit: the [train] recipe's)")] = None
    seed: Annotated[Int | None, Field(ge=0, le=2**32 - 1, json_schema_extra=allowed("an integer >= 0, or omit"),
                                      description="initial weights, data order and sampled subnets (omit: the "
                                                  "study's seed)")] = None
    sample_skip: Annotated[Bool, Field(description=(
        "also train every stage whose base arch has the residual skip with it off (drawn per stage and step), so "
        "that archs without skips are subnets too (an ablation's no_skip); a search's archs keep the base's skips"))
                           ] = False
    bn_batches: Annotated[Int, Field(ge=1, le=1000, description=(
        "training batches that re-estimate a subnet's BatchNorm statistics before it is scored"))] = 4
    bn_batch_size: Annotated[Int, Field(ge=1, le=65_536, description="images per recalibration batch")] = 128
    job: Annotated[Literal["local", "ray"], Field(description=(
        "where the supernet trains: in the driver (local) or as one Ray job (ray; the study's [ray] address)"))
                   ] = "local"

    _inert: ClassVar[Rules] = inert(n_random=lambda t: t.sampling != "sandwich",
                                    distillation=lambda t: t.sampling != "sandwich")

    @model_validator(mode="after")
    def _one_budget(self) -> SupernetConfig:
        if self.epochs is not None and self.steps is not None:
            raise bad("steps", "epochs and steps are mutually exclusive; set one of them")
        return self

    def recipe(self, train: Any) -> Any:
        """The supernet's training recipe: ``train`` (a TrainConfig) with this table's budget and overrides."""
        changes: dict[str, Any] = {"steps": self.steps, "epochs": None if self.steps is not None else
                                   (self.epochs if self.epochs is not None else DEFAULT_EPOCHS)}
        for key in ("lr", "batch_size", "warmup_epochs", "seed"):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key)
        return train.replace(**changes)
