"""Searching a benchmark table's records with any Optuna sampler: proposals mapped onto unseen records.

A table holds a few thousand archs of a space of ~1e11, so a search *on the table* must only propose archs it
holds.  :class:`RecordSampler` wraps an Optuna sampler so that every trial it samples **is** one of the table's
records, by one stated rule (the same for ``nas-harness benchmark`` and for a study with ``[evaluator] kind =
"table"``):

* a random sampler (:class:`optuna.samplers.RandomSampler`) draws records uniformly **without replacement**: the
  first record not yet taken in a seeded permutation of the table's rows;
* any other sampler proposes as it always does (its relative sampling, then its independent sampling of the
  remaining parameters, in the parameters' order), and the proposal is mapped onto the **nearest record not yet
  taken, by Hamming distance** over :func:`~nas_harness.tables.arch_features` (per stage: kernel, expansion, SE,
  repeats, channels; the number of entries that differ), ties broken uniformly at random by the sampler's own
  seeded generator.

The trial's parameters are the record's, so what the trial evaluates, what is stored and what the sampler learns
from are the record; its row is stored as the trial's system attribute ``table_row``.  A record is taken once any
trial of the study holds it (chosen here, or enqueued with its parameters), whatever that trial's state, so no
record is counted twice.  The choice is made in :meth:`RecordSampler.before_trial`, i.e. inside
``study.ask()``, which the harness's workers call under the study's lock: concurrent workers never take the same
record.  Enqueued trials keep their parameters (an arch outside the table is then the evaluator's recorded miss).
When every record is taken (a study asking for more trials than the table holds), proposals are not mapped.

Caveat (Optuna's constant liar, used by the studies' TPE): a trial still *running* is represented in the liar's
history by the proposal TPE made for it; once it finishes, by its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler

from nas_harness.arch import parse_arch
from nas_harness.errors import ConfigError
from nas_harness.tables._data import BenchmarkTable, accel_nasbench, arch_features

#: System attribute holding the table row a trial's parameters come from.
ROW_KEY = "table_row"


def random_order(n: int, seed: int) -> np.ndarray:
    """The seeded permutation of ``range(n)`` a random search over a table's records follows (its first ``k``
    entries are ``k`` draws without replacement)."""
    return np.random.default_rng([seed, 0x7AB1E]).permutation(n)


def nearest_unseen(features: np.ndarray, x: np.ndarray, seen: np.ndarray, rng: np.random.Generator) -> int:
    """The row of ``features`` (shape (N, d)) nearest to ``x`` (shape (d,)) by Hamming distance among rows not
    ``seen`` (bool, shape (N,)); ties broken by ``rng.choice``.  At least one row must be unseen."""
    d = (x != features).sum(axis=1).astype(float)
    d[seen] = np.inf
    best = np.flatnonzero(d == d.min())
    return int(best[0] if len(best) == 1 else rng.choice(best))


class SpaceCodec:
    """A study's trial parameters (:class:`~nas_harness.space.SearchSpace`'s) <-> a table's records: every table
    arch must be a member of ``space`` (:func:`~nas_harness.tables._data.check_space`)."""

    def __init__(self, table: BenchmarkTable, space: Any) -> None:
        from optuna.distributions import CategoricalDistribution

        self.table, self.space = table, space
        self.distributions = {n: CategoricalDistribution(c) for n, c in space.param_grid().items()}
        self.features = table.features

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """The coordinates of a proposal (:func:`arch_features` of its arch), shape (d,)."""
        return np.array(arch_features(self.space.arch_from_params(params)), dtype=float)

    def decode(self, row: int) -> dict[str, Any]:
        """The parameters of record ``row``."""
        return self.space.params_of(parse_arch(self.table.archs[row]))

    def row_of(self, params: Mapping[str, Any]) -> int | None:
        """The record a trial's parameters give (None: not a record, or parameters of another space)."""
        try:
            return self.table.index(self.space.arch_from_params(params))
        except ConfigError:
            return None


class FeatureCodec:
    """Any table (a recorded one too): one categorical parameter ``fNN`` per feature column the table varies
    (column NN of :func:`arch_features`)."""

    def __init__(self, table: BenchmarkTable) -> None:
        from optuna.distributions import CategoricalDistribution

        F = table.features
        self.cols = [j for j in range(F.shape[1]) if len(np.unique(F[:, j])) > 1]
        self.names = [f"f{j:02d}" for j in self.cols]
        self.distributions = {n: CategoricalDistribution([float(v) for v in np.unique(F[:, j])])
                              for n, j in zip(self.names, self.cols)}
        self.features = F[:, self.cols]
        self._rows = {tuple(r): i for i, r in enumerate(self.features.tolist())}

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array([params[n] for n in self.names], dtype=float)

    def decode(self, row: int) -> dict[str, Any]:
        return {n: float(v) for n, v in zip(self.names, self.features[row])}

    def row_of(self, params: Mapping[str, Any]) -> int | None:
        return self._rows.get(tuple(float(params[n]) for n in self.names)) if set(self.names) <= set(params) else None


class RecordSampler(BaseSampler):
    """An Optuna sampler that makes every trial one of ``table``'s records (the rule: module docstring).

    ``base``: the sampler whose proposals are mapped; ``codec``: the trial's parameters (``distributions``, in
    the order proposals are drawn) and how they map to records (``features``, shape (N, d); ``encode(params)``,
    ``decode(row)``, ``row_of(params)``): :class:`SpaceCodec` for a study, :class:`FeatureCodec` for the
    benchmark; ``seed``: the generator of ties and of the random permutation; ``exclude`` (bool, shape (N,)):
    records never proposed (e.g. those without the study's cost).  Picklable (a Ray searcher may be saved).
    """

    def __init__(self, base: Any, table: BenchmarkTable, codec: SpaceCodec | FeatureCodec, seed: int,
                 exclude: np.ndarray | None = None) -> None:
        self.base = base
        self.table = table
        self.codec = codec
        self.exclude = np.zeros(len(table), dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool)
        self.uniform = isinstance(base, RandomSampler)
        self.seed = seed
        self._rng = np.random.default_rng([seed, 0x7AB1E])  # ties of the nearest-record rule
        self._perm: np.ndarray | None = None
        self._chosen: dict[int, int] = {}  # trial id -> row, for trials this sampler chose

    @property
    def distributions(self) -> dict[str, Any]:
        """Every parameter of a trial (name -> Optuna distribution)."""
        return self.codec.distributions

    @classmethod
    def for_space(cls, base: Any, table: BenchmarkTable, space: Any, seed: int,
                  exclude: np.ndarray | None = None) -> RecordSampler:
        """For a study: the trial's parameters are ``space``'s."""
        return cls(base, table, SpaceCodec(table, space), seed, exclude)

    @classmethod
    def for_features(cls, base: Any, table: BenchmarkTable, seed: int) -> RecordSampler:
        """For the benchmark, on any table: one categorical per feature column the table varies."""
        return cls(base, table, FeatureCodec(table), seed)

    # ------------------------------------------------------------------------------------- the rule
    def taken(self, study: Any, exclude: int | None = None) -> np.ndarray:
        """Bool, shape (N,): the records some trial of ``study`` holds (other than trial number ``exclude``) and
        the excluded ones."""
        seen = self.exclude.copy()
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude:
                continue
            row = t.system_attrs.get(ROW_KEY)
            if row is None:
                params = t.system_attrs.get("fixed_params") or t.params
                row = self.codec.row_of(params) if params else None
            if isinstance(row, int) and 0 <= row < len(seen):
                seen[row] = True
        return seen

    def _propose(self, study: Any, trial: Any) -> dict[str, Any]:
        """What the base sampler proposes for ``trial``, as Optuna's trial would ask it."""
        space = self.base.infer_relative_search_space(study, trial)
        relative = self.base.sample_relative(study, trial, space)
        out: dict[str, Any] = {}
        for name, dist in self.distributions.items():
            if dist.single():
                out[name] = dist.to_external_repr(0)
            elif name in relative and name in space:
                out[name] = relative[name]
            else:
                out[name] = self.base.sample_independent(study, trial, name, dist)
        return out

    def choose(self, study: Any, trial: Any) -> int | None:
        """The record ``trial`` gets (None when every record is taken)."""
        seen = self.taken(study, exclude=trial.number)
        if seen.all():
            return None
        if self.uniform:
            if self._perm is None:
                self._perm = random_order(len(self.table), self.seed)
            return int(self._perm[~seen[self._perm]][0])
        return nearest_unseen(self.codec.features, self.codec.encode(self._propose(study, trial)), seen, self._rng)

    # ------------------------------------------------------------------------------------- Optuna's sampler API
    def before_trial(self, study: Any, trial: Any) -> None:
        self.base.before_trial(study, trial)
        if "fixed_params" in trial.system_attrs or ROW_KEY in trial.system_attrs or trial.params:
            return  # enqueued: evaluated as given; or a trial whose record was chosen already
        row = self.choose(study, trial)
        if row is not None:
            study._storage.set_trial_system_attr(trial._trial_id, ROW_KEY, row)
            self._chosen[trial._trial_id] = row

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        if trial._trial_id not in self._chosen:
            return self.base.infer_relative_search_space(study, trial)
        return {n: d for n, d in self.distributions.items() if not d.single()}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        row = self._chosen.pop(trial._trial_id, None)
        if row is None:
            return self.base.sample_relative(study, trial, search_space)
        params = self.codec.decode(row)
        return {n: params[n] for n in search_space}

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._chosen.pop(trial._trial_id, None)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def __str__(self) -> str:
        return f"{self.base} on the {self.table.name} records"


def table_sampler(base: Any, name: str, space: Any, seed: int, cost_key: str | None = None) -> RecordSampler:
    """The sampler of a study with ``[evaluator] kind = "table"``: ``base``'s proposals mapped onto the records of
    table ``name`` (:class:`RecordSampler`); with a table cost (``cost_key``, e.g. ``ms_per_image_tpuv2``) the
    records the table has no such measurement for are never proposed."""
    from nas_harness.tables._evaluators import COST_COLUMNS

    if name != "accel_nasbench":
        raise ConfigError(f"table.name: {name!r} is not a packaged table; allowed: 'accel_nasbench'")
    table = accel_nasbench()
    exclude = np.isnan(np.asarray(table.columns[COST_COLUMNS[cost_key]], dtype=float)) if (
        cost_key in COST_COLUMNS) else None
    return RecordSampler.for_space(base, table, space, seed, exclude=exclude)
