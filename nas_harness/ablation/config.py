"""The ablation file (TOML): what to ablate, with which recipe, over which seeds, where to store runs.

It uses the same idiom and the same tables as a study file (``[data]``, ``[train]``, ``[trial]``, ``[run]``,
``[ray]``), plus what is particular to an ablation::

    name = "ablation_b0"                  # results go to <run.results_dir>/<name>/
    description = "..."                   # optional
    base = "b0"                           # base arch: 'b0'..'b7', an arch string or a file (default b0)
    variants = ["baseline", "no_se", "no_skip", "neither"]   # built-ins and/or [variant.<name>] below
    baseline = "baseline"                 # what Δ compares against (must be among variants)
    seeds = 3                             # a count (seeds 0..N-1) or an explicit list [0, 7, 42]

    [variant.k5_stage3]                   # a user-defined variant (see nas_harness.ablation.variants)
    overrides = [{stage = 3, override = "k5_e4"}]

    [trial]                               # stem_stride, macs_resolution, macs_num_classes (default: the
                                          # data set's classes), evaluate_test (default true)
    [run]                                 # storage (default SQLite results/<name>/ablation.db), results_dir,
                                          # backend = "local" | "ray", progress, plots
    [ray]                                 # cpus_per_trial, gpus_per_trial, max_concurrent, address, num_cpus
    [compare_budget]                      # optional: the same variants and seeds at a second budget
    epochs = 3                            # (or steps); train_subset, resolution: change the data too
    [supernet]                            # optional: also score the variants with a supernet's inherited
    epochs = 10                           # weights (a study's [supernet] keys, plus space and sample_skip;
                                          # nas_harness.ablation.supernet)

With ``[compare_budget]`` the report says whether the two budgets rank the variants alike (Kendall tau of the
variant means, same best variant, same verdict of each Δ vs the baseline): a conclusion that flips with the
budget is a statement about the budget, not about the architecture.

Everything is validated before anything is trained; each problem is a one-line
:class:`~nas_harness.errors.ConfigError` naming its key path (e.g. ``train.lr``,
``variant.k5.overrides[0].stage``).  Files written for the older layout (``arch``, ``stem_stride``,
``macs_resolution``, ``storage`` and ``[backend]`` at the top) get a line saying where the key moved.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from nas_harness._config import (
    NAME_RULE,
    ConfigModel,
    Int,
    Name,
    Num,
    Rules,
    Text,
    allowed,
    bad,
    distinct,
    inert,
    json_schema,
    read_toml,
    restate,
)
from nas_harness.backends.settings import RayConfig, RunSettings
from nas_harness.data.proxy import ProxyConfig
from nas_harness.errors import ConfigError
from nas_harness.tracking.config import TrackingConfig
from nas_harness.train.config import TrainConfig
from nas_harness.trial import TrialSettings

from .supernet import AblationSupernet
from .variants import BUILTIN_VARIANTS, VARIANT_NAME, VARIANT_NAME_RULE, VariantDef, resolve_variants

if TYPE_CHECKING:
    from nas_harness.arch import Arch

__all__ = ["AblationConfig", "AblationTrial", "CompareBudget", "load_ablation", "parse_ablation"]

DEFAULT_VARIANTS = ("baseline", "no_se", "no_skip", "neither")
_SEED = Annotated[Int, Field(ge=0, le=2**32 - 1)]


class AblationTrial(TrialSettings):
    """``[trial]`` of an ablation: test accuracy is what the ablation reports; MACs/params default to the
    trained classifier's size."""

    macs_num_classes: Annotated[Int | None, Field(ge=1, le=1_000_000, description=(
        "classifier size at which MACs/params are counted; omit for the data set's classes"))] = None
    evaluate_test: Annotated[bool, Field(strict=True, description="report test accuracy (the ablation's metric)")
                             ] = True
    cache: Annotated[bool, Field(strict=True, description="applies to search studies only (ablation runs "
                                                          "are stored once each)")] = False

    _inert: ClassVar[Rules] = inert(cache=lambda t: True)


class CompareBudget(ConfigModel):
    """``[compare_budget]``: a second budget for the same variants and seeds (at least one key)."""

    epochs: Annotated[Num | None, Field(gt=0, le=100_000, description="training epochs at the second budget")] = None
    steps: Annotated[Int | None, Field(ge=1, le=10**9, description="optimiser steps at the second budget")] = None
    train_subset: Annotated[Int | None, Field(ge=1, le=10**9, description="training images at the second budget")
                            ] = None
    resolution: Annotated[Int | None, Field(ge=8, le=1024, description="image size at the second budget")] = None

    @model_validator(mode="after")
    def _something(self) -> CompareBudget:
        if self.epochs is not None and self.steps is not None:
            raise bad("", "epochs and steps are mutually exclusive; set one")
        if all(getattr(self, k) is None for k in type(self).model_fields):
            raise bad("", "give at least one of epochs, steps, train_subset, resolution")
        return self


class AblationConfig(ConfigModel):
    """A validated ablation: every variant already resolved to a valid :class:`Arch` (``archs``)."""

    name: Annotated[Name, Field(description=f"ablation name and results folder: {NAME_RULE}")]
    description: Annotated[Text, Field(max_length=4000, description="free text")] = ""
    base: Annotated[Text, Field(min_length=1, max_length=10_000,
                                description="base arch: b0..b7, an arch string or a file holding one")] = "b0"
    variants: Annotated[tuple[Annotated[Text, Field(min_length=1, max_length=200)], ...], Field(
        min_length=1, max_length=200, description="built-in variants and [variant.<name>] tables")] = DEFAULT_VARIANTS
    baseline: Annotated[Text | None, Field(description="the variant Δ compares against ('baseline' when listed)")
                        ] = None
    seeds: Annotated[tuple[_SEED, ...], Field(min_length=1, max_length=10_000, description=(
        "a count N (seeds 0..N-1) or a list of distinct seeds"), json_schema_extra=allowed(
        "a count N >= 1 (seeds 0..N-1) or a non-empty list of distinct integers >= 0"))] = (0, 1, 2)
    variant: Annotated[dict[str, VariantDef], Field(description="user-defined variants")] = Field(default_factory=dict)
    data: ProxyConfig = ProxyConfig()
    train: TrainConfig = TrainConfig()
    trial: AblationTrial = AblationTrial()
    run: RunSettings = RunSettings()
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()
    compare_budget: Annotated[CompareBudget | None, Field(description=(
        "run the same variants at a second budget and report whether the ranking agrees"))] = None
    supernet: Annotated[AblationSupernet | None, Field(description=(
        "also score every variant with a weight-sharing supernet's inherited weights and report whether its "
        "verdicts agree with the from-scratch runs' (docs/supernet.md)"))] = None

    _renamed: ClassVar[dict[str, str]] = {
        "arch": "renamed to 'base' (as in study files)",
        "stem_stride": "moved to [trial] stem_stride",
        "macs_resolution": "moved to [trial] macs_resolution",
        "macs_num_classes": "moved to [trial] macs_num_classes",
        "storage": "moved to [run] storage (a storage URL, e.g. sqlite:///results/x/ablation.db)",
        "backend": "moved: [run] backend = 'local' | 'ray', and Ray resources to the [ray] table",
    }
    _archs: dict[str, Any] = PrivateAttr(default_factory=dict)
    _base_arch: Any = PrivateAttr(default=None)
    _supernet_plan: Any = PrivateAttr(default=None)

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_or_list(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise bad("", f"at least one seed is needed, got {v}")
            if v > 10_000:
                raise bad("", f"at most 10000 seeds, got {v}")
            return tuple(range(v))
        if isinstance(v, list) and not v:
            raise bad("", "at least one seed is needed, got an empty list")
        return distinct(v, "seeds")

    @field_validator("variants", mode="before")
    @classmethod
    def _distinct(cls, v: Any) -> Any:
        return distinct(v, "names")

    @field_validator("variant", mode="before")
    @classmethod
    def _variant_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                if name in BUILTIN_VARIANTS:
                    raise restate(ConfigError(f"variant.{name}: name clashes with a built-in variant; pick "
                                              "another name"))
                if not re.fullmatch(VARIANT_NAME, str(name)):
                    raise restate(ConfigError(f"variant.{str(name)[:64]}: variant names use {VARIANT_NAME_RULE}"))
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_baseline(cls, d: Any) -> Any:
        if isinstance(d, dict) and "baseline" not in d:
            variants = d.get("variants", DEFAULT_VARIANTS)
            if isinstance(variants, (list, tuple)) and "baseline" in variants:
                d = {**d, "baseline": "baseline"}
        return d

    @model_validator(mode="after")
    def _resolve(self) -> AblationConfig:
        from nas_harness.presets import resolve_arch

        if self.baseline is not None and self.baseline not in self.variants:
            raise bad("baseline", f"{self.baseline!r} is not among variants {list(self.variants)}")
        try:
            base = resolve_arch(self.base)
        except (ValueError, OSError) as exc:
            raise bad("base", " ".join(str(exc).split())) from None
        try:
            archs = resolve_variants(base, self.variants, self.variant, where="variants")
        except ConfigError as exc:
            raise restate(exc) from None
        object.__setattr__(self, "_base_arch", base)
        self._archs.update(archs)
        if self.supernet is not None:
            from .supernet import ablation_space

            try:
                object.__setattr__(self, "_supernet_plan", ablation_space(base, archs, self.supernet))
            except ConfigError as exc:
                raise restate(exc) from None
        return self

    # --- derived values -------------------------------------------------------------------------------
    @property
    def archs(self) -> dict[str, Arch]:
        """Each variant's arch, in ``variants`` order."""
        return dict(self._archs)

    @property
    def supernet_plan(self) -> tuple[Any, bool, dict[str, str]]:
        """With ``[supernet]``: the supernet's SearchSpace, whether its sampler draws skips, and the variants
        it does not hold (name -> why); see :func:`nas_harness.ablation.supernet.ablation_space`."""
        if self._supernet_plan is None:
            raise ConfigError("supernet: the ablation file has no [supernet] table")
        return self._supernet_plan

    @property
    def base_arch(self) -> Arch:
        return self._base_arch

    @property
    def definitions(self) -> dict[str, VariantDef]:
        return dict(self.variant)

    @property
    def out_dir(self) -> Path:
        """Folder for the table and figure: ``<run.results_dir>/<name>/``."""
        return Path(self.run.results_dir) / self.name

    @property
    def storage_url(self) -> str:
        return self.run.storage or f"sqlite:///{self.out_dir / 'ablation.db'}"

    def recipe(self) -> dict[str, Any]:
        """What must not change between a run and its resume (else stored runs are not comparable)."""
        return {
            "data": self.data.comparable(),
            "train": self.train.comparable(seed=False),
            "trial": self.trial.comparable(),
        }

    def replace_train(self, train: TrainConfig) -> AblationConfig:
        """The same ablation with another (already validated) training recipe."""
        new = self.model_copy(update={"train": train})
        object.__setattr__(new, "_archs", dict(self._archs))
        object.__setattr__(new, "_base_arch", self._base_arch)
        object.__setattr__(new, "_supernet_plan", self._supernet_plan)
        return new

    def second_budget(self) -> AblationConfig | None:
        """The same ablation at the ``[compare_budget]`` budget (None without one): name ``<name>-budget2``,
        stored in the same storage, its files under ``<results>/<name>/<name>-budget2/``."""
        cb = self.compare_budget
        if cb is None:
            return None
        d = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        d.pop("compare_budget", None)
        d.pop("supernet", None)  # the supernet scores the first budget's variants only
        train = dict(d.get("train", {}))
        if cb.epochs is not None or cb.steps is not None:
            train.pop("epochs", None)
            train.pop("steps", None)
            train["epochs" if cb.epochs is not None else "steps"] = cb.epochs if cb.epochs is not None else cb.steps
        data = dict(d.get("data", {}))
        for key in ("train_subset", "resolution"):
            if getattr(cb, key) is not None:
                data[key] = getattr(cb, key)
        run = {**d.get("run", {}), "storage": self.storage_url, "results_dir": str(self.out_dir)}
        d.update(name=f"{self.name}-budget2"[:64], train=train, data=data, run=run)
        try:
            return AblationConfig.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"compare_budget: {exc}") from None

    def budget_text(self) -> str:
        """'1 epoch(s), 8000 images at 16 px' (what differs between two budgets)."""
        t, d = self.train, self.data
        b = f"{t.epochs:g} epoch(s)" if t.epochs is not None else f"{t.steps} steps"
        n = f"{d.train_subset} images" if d.train_subset else "all images"
        return f"{b}, {n} at {d.resolution} px"

    def with_seeds(self, n: int) -> AblationConfig:
        """Override the seeds with ``0..n-1`` (the CLI's ``--seeds N``)."""
        return self._with(seeds=n, where="--seeds")

    def with_backend(self, kind: str) -> AblationConfig:
        """Override the backend (the CLI's ``--backend``)."""
        return self._with(run={**self.run.model_dump(exclude_unset=True), "backend": kind}, where="--backend")

    def with_storage(self, url: str) -> AblationConfig:
        """Override the storage URL (the CLI's ``--storage``)."""
        return self._with(run={**self.run.model_dump(exclude_unset=True), "storage": url}, where="--storage")

    def with_workers(self, n: int) -> AblationConfig:
        """Override ``run.workers`` (the CLI's ``--workers``)."""
        return self._with(run={**self.run.model_dump(exclude_unset=True), "workers": n}, where="--workers")

    def with_tracking(self, tracking: TrackingConfig) -> AblationConfig:
        """Override the [tracking] table (the CLI's ``--mlflow`` / ``--tensorboard``)."""
        return self._with(tracking=tracking.to_dict(), where="--mlflow/--tensorboard")

    def _with(self, where: str, **changes: Any) -> AblationConfig:
        d = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        d.update(changes)
        try:
            return AblationConfig.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The validated file, normalised (stored in the run database)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_ablation(raw: Any) -> AblationConfig:
    """Validate an already-decoded ablation file (see the module docstring for the schema)."""
    return AblationConfig.from_dict(raw, "")


def load_ablation(path: str | Path) -> AblationConfig:
    """Read and validate an ablation TOML file; ConfigError (one line) on any problem."""
    return parse_ablation(read_toml(path, "ablation file"))


def ablation_sections() -> dict[str, type[ConfigModel]]:
    """Section -> model of an ablation file (for the key table)."""
    return {"": AblationConfig, "data": ProxyConfig, "train": TrainConfig, "trial": AblationTrial,
            "run": RunSettings, "ray": RayConfig, "tracking": TrackingConfig, "compare_budget": CompareBudget,
            "supernet": AblationSupernet}


def ablation_json_schema() -> dict[str, Any]:
    return json_schema(AblationConfig, "nas-harness ablation file")
