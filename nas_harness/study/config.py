"""Study files: one TOML file fully describes a search study; validated before anything runs or is written.

Every key, its type, range, default and meaning is declared once, on the models below and on the tables
they share with ablation files (``[data]``: :class:`~nas_harness.data.ProxyConfig`, ``[train]``:
:class:`~nas_harness.train.TrainConfig`, ``[trial]``: :class:`~nas_harness.trial.TrialSettings`, ``[run]``
and ``[ray]``: :mod:`nas_harness.backends.settings`, ``[objective]``: :class:`~nas_harness.objectives.Objective`,
``[latency]``: :class:`~nas_harness.latency.LatencyConfig`).
:func:`schema_markdown` renders the key table (``docs/study-file.md``) and ``nas-harness schema study`` the JSON
Schema for editors.  ``[space]`` is validated by :meth:`nas_harness.space.SearchSpace.from_dict`.

A study is one experiment: :meth:`StudyConfig.comparable` is everything that makes its trials comparable
(space, data, recipe, objective, trial settings, seed); the search stores it and refuses to resume the study
with a different one.  Keys that only say how to run (backend, storage, timeout, progress, sampler, pruner,
Ray resources) may change between runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from nas_harness._config import (
    NAME_RULE,
    ConfigModel,
    Int,
    Name,
    Num,
    Rules,
    Text,
    bad,
    inert,
    json_schema,
    read_toml,
    restate,
)
from nas_harness.backends.settings import RayConfig, RunSettings
from nas_harness.data.proxy import ProxyConfig
from nas_harness.errors import ConfigError
from nas_harness.evaluators import EvalContext, Evaluator, EvaluatorConfig, option_tables
from nas_harness.latency.config import LatencyConfig, LatencySettings
from nas_harness.objectives import Objective
from nas_harness.space import SpaceKeys
from nas_harness.tracking.config import TrackingConfig
from nas_harness.train.config import TrainConfig
from nas_harness.trial import TrialSettings


class SamplerConfig(ConfigModel):
    """``[sampler]``: how the next arch is chosen."""

    kind: Annotated[Literal["tpe", "nsgaii", "random", "grid"], Field(description="Optuna sampler")] = "tpe"
    n_startup_trials: Annotated[Int, Field(ge=0, le=100_000, description="applies to kind = 'tpe' only")] = 10
    population_size: Annotated[Int, Field(ge=2, le=100_000, description="applies to kind = 'nsgaii' only")] = 20
    max_grid_size: Annotated[Int, Field(ge=1, le=1_000_000, description="applies to kind = 'grid' only")] = 4096
    enqueue: Annotated[tuple[Annotated[Text, Field(max_length=10_000)], ...], Field(max_length=1000, description=(
        "seed trials: 'b0', 'b0-w0.5', 'b0-d0.5', 'b0-nose', 'b0-k3', 'base', 'base-nose', or arch strings"))] = ()

    _inert: ClassVar[Rules] = inert(n_startup_trials=lambda s: s.kind != "tpe",
                                    population_size=lambda s: s.kind != "nsgaii",
                                    max_grid_size=lambda s: s.kind != "grid")
    #: Set by :class:`StudyConfig` for a study on a benchmark table (``[evaluator] kind = "table"``): the table's
    #: name, so :func:`~nas_harness.study.samplers.make_sampler` proposes the table's records only.
    _table: str | None = PrivateAttr(default=None)

    @property
    def table(self) -> str | None:
        """The benchmark table whose records this sampler proposes (None: the whole space)."""
        return self._table


class PrunerConfig(ConfigModel):
    """``[pruner]``: per-epoch early stopping on the local backend (single objective)."""

    kind: Annotated[Literal["none", "median", "sha", "hyperband"], Field(description="Optuna pruner")] = "none"
    warmup_epochs: Annotated[Int, Field(ge=0, le=100_000, description="applies to kind = 'median' only")] = 1
    startup_trials: Annotated[Int, Field(ge=0, le=100_000, description="applies to kind = 'median' only")] = 3
    min_epochs: Annotated[Int, Field(ge=1, le=100_000, description="applies to kind = 'sha' or 'hyperband' only")
                          ] = 1
    reduction_factor: Annotated[Int, Field(ge=2, le=100, description="applies to kind = 'sha' or 'hyperband' only")
                                ] = 3

    _inert: ClassVar[Rules] = inert(warmup_epochs=lambda p: p.kind != "median",
                                    startup_trials=lambda p: p.kind != "median",
                                    min_epochs=lambda p: p.kind not in ("sha", "hyperband"),
                                    reduction_factor=lambda p: p.kind not in ("sha", "hyperband"))


class StudyRun(RunSettings):
    """``[run]`` of a study: the shared run settings plus the study's size and time limit."""

    n_trials: Annotated[Int, Field(ge=1, le=1_000_000, description=(
        "finished (complete or pruned) trials the study should reach, over all runs and workers; failed trials "
        "do not count"))] = 20
    timeout_s: Annotated[Num, Field(ge=0, le=1e8, description="stop starting trials after this long (0 = never)")
                         ] = 0.0
    max_failures: Annotated[Int, Field(ge=0, le=1_000_000, description=(
        "stop after this many failed trials in one run (0 = n_trials)"))] = 0


class StudyRay(RayConfig):
    """``[ray]`` of a study: resources plus a Tune scheduler for early stopping."""

    scheduler: Annotated[Literal["none", "asha", "median"], Field(description=(
        "Tune trial scheduler: asha (asynchronous successive halving) or median (median stopping rule); "
        "single objective"))] = "none"
    grace_epochs: Annotated[Int, Field(ge=1, le=100_000, description="applies with a scheduler only: epochs "
                                                                     "before a trial may be stopped")] = 1
    reduction_factor: Annotated[Int, Field(ge=2, le=100, description="applies with scheduler = 'asha' only")] = 3

    _inert: ClassVar[Rules] = inert(grace_epochs=lambda r: r.scheduler == "none",
                                    reduction_factor=lambda r: r.scheduler != "asha")
    _renamed: ClassVar[dict[str, str]] = {
        "asha": "replaced by scheduler = 'asha' (or 'median', 'none')",
        "asha_grace_epochs": "renamed to grace_epochs",
        "asha_reduction_factor": "renamed to reduction_factor",
    }


_MULTIPLIER = Annotated[Num, Field(ge=1.0, le=4.0)]


class ScalingConfig(ConfigModel):
    """``[scaling]``: the compound-scaling grid of ``search --scaling``."""

    alphas: Annotated[tuple[_MULTIPLIER, ...], Field(min_length=1, max_length=64, description="depth multipliers")
                      ] = (1.0, 1.1, 1.2, 1.3, 1.4)
    betas: Annotated[tuple[_MULTIPLIER, ...], Field(min_length=1, max_length=64, description="width multipliers")
                     ] = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3)
    gammas: Annotated[tuple[_MULTIPLIER, ...], Field(min_length=1, max_length=64,
                                                     description="resolution multipliers")
                      ] = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3)
    tolerance: Annotated[Num, Field(ge=0, le=10, description="keep triples with |a*b^2*g^2 - 2| <= tolerance")] = 0.1
    phi: Annotated[Num, Field(ge=0, le=10, description="compound coefficient at which triples are compared")] = 1.0


class StudyConfig(ConfigModel):
    """A validated study file (see the module docstring; every key is documented on its model)."""

    name: Annotated[Name, Field(description=f"study name and results folder: {NAME_RULE}")]
    description: Annotated[Text, Field(max_length=4000, description="free text, stored with the study")] = ""
    base: Annotated[Text, Field(min_length=1, max_length=10_000,
                                description="base arch of the space: b0..b7, an arch string, or a file holding one")
                    ] = "b0"
    base_width: Annotated[Num, Field(ge=0.05, le=8, description="width multiplier applied to base")] = 1.0
    base_depth: Annotated[Num, Field(ge=0.05, le=8, description="depth multiplier applied to base")] = 1.0
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1, description="seeds the sampler and every trial's training")] = 0
    space: Annotated[dict[str, Any], Field(description="per-stage choices: the [space] keys below")
                     ] = Field(default_factory=dict)
    data: ProxyConfig = ProxyConfig()
    train: TrainConfig = TrainConfig()
    trial: TrialSettings = TrialSettings()
    objective: Objective = Objective()
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    run: StudyRun = StudyRun()
    ray: StudyRay = StudyRay()
    scaling: ScalingConfig = ScalingConfig()
    tracking: TrackingConfig = TrackingConfig()
    latency: Annotated[LatencyConfig | None, Field(description=(
        "how latency is measured (used with objective.cost = 'latency' or max_latency_ms; when given otherwise, "
        "latency is recorded with every trial)"))] = None
    evaluator: EvaluatorConfig = EvaluatorConfig()

    @model_validator(mode="before")
    @classmethod
    def _evaluator_options(cls, d: Any) -> Any:
        """The chosen evaluator kind's own table (``[supernet]``, ...) becomes ``evaluator.options``; a table of
        another kind is refused (it would have no effect)."""
        if not isinstance(d, Mapping):
            return d
        tables = option_tables() & set(d)
        if not tables:
            return d
        d = dict(d)
        ev = d.get("evaluator", {})
        kind = ev.get("kind", "train") if isinstance(ev, Mapping) else None
        for table in sorted(tables):
            if table != kind:
                raise bad(table, f"the [{table}] table applies to evaluator.kind = {table!r} only (this file has "
                                 f"{kind!r}); remove it or set [evaluator] kind = {table!r}")
            if isinstance(ev, Mapping) and "options" in ev:
                raise bad("evaluator.options", f"give the options once, as the [{table}] table")
            d["evaluator"] = {**ev, "options": d.pop(table)}
        return d

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        obj = self.objective
        if self.latency is not None or obj.uses_latency:
            try:  # a device this machine lacks, or another device's table, is refused before anything runs
                (self.latency or LatencyConfig()).check_machine()
                self._check_latency_table()
            except ConfigError as exc:
                raise restate(exc) from None
        self._check_table()
        if obj.kind == "multi" and self.pruner.kind != "none":
            raise bad("pruner.kind", f"{self.pruner.kind!r} is not supported for the multi objective; allowed "
                                     "values: 'none'")
        if obj.kind == "multi" and self.ray.scheduler != "none":
            raise bad("ray.scheduler", f"{self.ray.scheduler!r} needs a single objective; allowed with "
                                       "objective.kind 'multi': 'none'")
        try:
            space = self.search_space()
        except ConfigError as exc:
            raise restate(exc) from None
        if self.sampler.kind == "grid" and space.size > self.sampler.max_grid_size:
            raise bad("sampler.kind", f"'grid' over {space.size} archs exceeds sampler.max_grid_size="
                                      f"{self.sampler.max_grid_size}; shrink [space] or raise the limit")
        from nas_harness.study.samplers import reference_trials

        try:
            reference_trials(space, list(self.sampler.enqueue))
        except ConfigError as exc:
            raise restate(exc) from None
        return self

    def _check_table(self) -> None:
        """A table cost needs a table study; a table study needs no more trials than the table has records (with
        the cost); its sampler proposes the table's records."""
        obj = self.objective
        if obj.table_cost and self.evaluator.kind != "table":
            raise bad("objective.cost", f"{obj.cost!r} is a benchmark table's measurement, known for its archs only: "
                                        f"it needs [evaluator] kind = 'table' (this file has {self.evaluator.kind!r}); "
                                        "otherwise use 'macs', 'params' or 'latency'")
        if self.evaluator.kind != "table":
            return
        from nas_harness.tables import records_with
        from nas_harness.tables._evaluators import COST_COLUMNS

        name = getattr(self.evaluator.settings(), "name", "accel_nasbench")
        column = COST_COLUMNS.get(obj.cost_key) if obj.table_cost else None
        n = records_with(column)
        if self.run.n_trials > n:
            what = f"archs with a measured {column}" if column and column != "macs_thop" else "archs"
            raise bad("run.n_trials", f"{self.run.n_trials} > the {name} table's {n} {what}: a table study "
                                      "evaluates each record at most once")
        self.sampler._table = name

    # --- derived objects ----------------------------------------------------------------------------
    def base_arch(self) -> Any:
        from nas_harness.presets import resolve_arch
        from nas_harness.scaling import scale_arch

        try:
            arch = resolve_arch(self.base)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"base: {' '.join(str(exc).split())}; allowed: b0..b7, an arch string or a file "
                              "holding one") from None
        if self.base_width != 1.0 or self.base_depth != 1.0:
            arch = scale_arch(arch, width=self.base_width, depth=self.base_depth)
        return arch

    def search_space(self) -> Any:
        """The study's space (built once per config object: it is immutable)."""
        return self._space

    @functools.cached_property
    def _space(self) -> Any:
        from nas_harness.space import SearchSpace

        return SearchSpace.from_dict(self.space, self.base_arch())

    def proxy_config(self) -> ProxyConfig:
        return self.data

    def train_config(self) -> TrainConfig:
        """The recipe; its seed is the study's unless the [train] table sets one."""
        return self.train if "seed" in self.train.model_fields_set else self.train.replace(seed=self.seed)

    def eval_context(self, train: TrainConfig | None = None) -> EvalContext:
        """What the study's evaluator is made from (``train``: the recipe with the thread count fixed)."""
        return EvalContext(space=self.search_space(), data=self.data, train=train or self.train_config(),
                           trial=self.trial, seed=self.seed, study_dir=self.study_dir)

    def make_evaluator(self, train: TrainConfig | None = None) -> Evaluator:
        """The study's evaluator (``[evaluator]``; from-scratch training by default)."""
        return self.evaluator.make(self.eval_context(train))

    def latency_settings(self) -> LatencySettings | None:
        """The resolved latency settings when trials record latency (cost or budget on latency, or a
        ``[latency]`` table given), else None."""
        if self.latency is None and not self.objective.uses_latency:
            return None
        return (self.latency or LatencyConfig()).settings(self.trial.macs_resolution,
                                                           self.trial.macs_num_classes or 1000, self.run.results_dir)

    def _check_latency_table(self) -> None:
        """An existing table file must be readable and measured on this device (one line naming the file)."""
        settings = self.latency_settings()
        if settings is None or not (settings.table_is_file and Path(settings.table).exists()):
            return  # the default folder keeps one file per device fingerprint: no mismatch possible
        from nas_harness.latency.table import LatencyTable, device_fingerprint

        LatencyTable.open(settings.table, device_fingerprint(settings.device, settings.threads))

    @property
    def study_dir(self) -> Path:
        return Path(self.run.results_dir) / self.name

    @property
    def storage_url(self) -> str:
        return self.run.storage or f"sqlite:///{self.study_dir / 'study.db'}"

    def comparable(self) -> dict[str, Any]:
        """What makes two runs' trials comparable; stored with the study and checked on resume.

        Excluded: where the data lives (``data.root``, ``allow_download``), the device, ``compile`` and the
        evaluation batch size (they change speed, not what is measured), and everything in [run], [ray],
        [sampler], [pruner], [scaling], [tracking].  When the objective uses latency, the latency device, threads,
        batch, resolution and memory format are included (another device is another experiment); the table's path
        and the repeats are not.  The evaluator (kind and options) is included unless it is the default training,
        so studies made before evaluators existed keep their fingerprint.
        """
        data = self.data.comparable()
        train = self.train_config().comparable()
        objective = self.objective.to_dict()
        for key, default in (("target_ms", None), ("max_latency_ms", 0.0)):
            if objective.get(key) == default:  # studies made before latency existed stay comparable
                objective.pop(key, None)
        out = {"seed": self.seed, "base": str(self.base_arch()), "space": self.search_space().to_dict(),
               "data": data, "train": train, "trial": self.trial.to_dict(), "objective": objective}
        settings = self.latency_settings()
        if settings is not None and self.objective.uses_latency:
            out["latency"] = settings.comparable()
        if self.evaluator.kind != "train":
            out["evaluator"] = self.evaluator.to_dict()
        return out

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate(d: Mapping[str, Any], source: str | None = None) -> StudyConfig:
    """Validate a study dict (as read from TOML); fills defaults; raises ConfigError naming the key path."""
    del source
    return StudyConfig.from_dict(d, "")


def load_study(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read and validate a study file; ``overrides`` maps dotted key paths (e.g. 'run.n_trials') to values."""
    d = read_toml(path, "study file")
    apply_overrides(d, overrides or {})
    return validate(d, source=str(path))


def apply_overrides(d: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set dotted key paths in a raw study dict (CLI flags); None values are skipped."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = d
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{part}: expected a table, got {type(node).__name__}")
        node[last] = value


SECTIONS: dict[str, type[ConfigModel]] = {
    "": StudyConfig, "data": ProxyConfig, "train": TrainConfig, "trial": TrialSettings, "objective": Objective,
    "sampler": SamplerConfig, "pruner": PrunerConfig, "run": StudyRun, "ray": StudyRay, "scaling": ScalingConfig,
    "latency": LatencyConfig, "space": SpaceKeys, "evaluator": EvaluatorConfig, "tracking": TrackingConfig,
}


def schema_markdown(sections: Mapping[str, type[ConfigModel]] | None = None) -> str:
    """The key table (key, default, allowed, meaning) as Markdown, generated from the models."""
    from nas_harness._config import KEY_COLUMNS, key_rows
    from nas_harness.report.document import Table, to_markdown

    return to_markdown([Table(KEY_COLUMNS, key_rows(sections or SECTIONS), code_columns={0, 2})])


def study_json_schema() -> dict[str, Any]:
    schema = json_schema(StudyConfig, "nas-harness study file")
    space = SpaceKeys.model_json_schema()  # [space] is a free table to StudyConfig; its keys are SpaceKeys'
    schema.setdefault("$defs", {}).update(space.pop("$defs", {}))
    schema["properties"]["space"] = {**space, "description": schema["properties"]["space"].get("description", "")}
    from nas_harness.evaluators import lookup

    for kind in sorted(option_tables()):  # each evaluator kind's own options table
        options = lookup(kind).options
        if options is not None:
            sub = options.model_json_schema()
            schema["$defs"].update(sub.pop("$defs", {}))
            schema["properties"][kind] = {**sub, "description": f"options of evaluator.kind = {kind!r}"}
    return schema
