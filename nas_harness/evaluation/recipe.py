"""The recipe a stored study trained its trials with, read back from the study itself, and the selection
of the archs to re-evaluate.

A search stores its validated study file (``config``) and what makes its trials comparable (``comparable``,
with the thread count it fixed) as study user attributes; :func:`study_recipe` rebuilds the proxy data,
training recipe and trial settings from them, so ``confirm`` and ``fidelity`` retrain an arch exactly as the
search did, with only the seed (or the fidelity) changed.  Nothing here imports the search package.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_harness.errors import ConfigError
from nas_harness.results import COSTS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from nas_harness.data import ProxyConfig
    from nas_harness.train import TrainConfig
    from nas_harness.trial import TrialSettings, TrialSpec

__all__ = ["RUNS_FILE", "Candidate", "RunsStorage", "StudyRecipe", "fresh_seeds", "merge_candidates",
           "open_study_source", "reference_candidates", "search_candidates", "study_evaluator", "study_recipe"]



@dataclass(frozen=True)
class StudyRecipe:
    """How a study trained its trials: proxy data, training recipe (threads as the study fixed them, seed =
    the search's), trial settings, and the search seed; ``evaluator``: how each run scores its arch (``None``:
    trained from scratch, as confirm and the default fidelity do whatever the study's own evaluator was)."""

    study_name: str
    data: ProxyConfig
    train: TrainConfig
    trial: TrialSettings
    seed: int
    evaluator: Any = None  # nas_harness.evaluators.Evaluator

    def spec(self, arch: Any, seed: int, *, evaluate_test: bool = False, resolution: int | None = None,
             macs_resolution: int | None = None) -> TrialSpec:
        """The trial of ``arch`` with ``seed`` under this recipe (``resolution``: another data resolution,
        as the compound-scaling search trains at; ``macs_resolution``: the MAC count's)."""
        from nas_harness.arch import parse_arch
        from nas_harness.trial import TrialSpec

        a = parse_arch(arch) if isinstance(arch, str) else arch
        data = self.data if resolution is None else self.data.replace(resolution=int(resolution))
        t = self.trial
        return TrialSpec(arch=a, data=data, train=self.train.replace(seed=int(seed)), seed=int(seed),
                         stem_stride=t.stem_stride, macs_resolution=int(macs_resolution or t.macs_resolution),
                         macs_num_classes=t.macs_num_classes or 1000, evaluate_test=evaluate_test,
                         evaluator=self.evaluator)

    def with_fidelity(self, data: dict[str, Any], train: dict[str, Any]) -> StudyRecipe:
        """The same recipe with some data/train keys replaced (validated by their tables)."""
        from nas_harness.data import ProxyConfig
        from nas_harness.train import TrainConfig

        d = {**self.data.to_dict(), **data}
        t = self.train.to_dict()
        if "epochs" in train or "steps" in train:  # one budget replaces the other
            t.pop("epochs", None)
            t.pop("steps", None)
        t = {k: v for k, v in {**t, **train}.items() if v is not None or k in train}
        return StudyRecipe(self.study_name, ProxyConfig.from_dict(d, "fidelity.data"),
                           TrainConfig.from_dict(t, "fidelity.train"), self.trial, self.seed, self.evaluator)

    def eval_context(self, study_dir: Any = None) -> Any:
        """What an evaluator for these runs is made from (no search space: the runs are fixed archs)."""
        from nas_harness.evaluators import EvalContext

        return EvalContext(space=None, data=self.data, train=self.train, trial=self.trial, seed=self.seed,
                           study_dir=study_dir)

    def with_evaluator(self, evaluator: Any) -> StudyRecipe:
        """The same recipe scored by ``evaluator`` (``None``: trained from scratch)."""
        return dataclasses.replace(self, evaluator=evaluator)

    def to_dict(self) -> dict[str, Any]:
        """What must not change between a run and its resume (stored with the runs and checked)."""
        return {
            "data": self.data.comparable(),
            "train": self.train.comparable(seed=False),
            "trial": self.trial.comparable(evaluate_test=False),
            **({"evaluator": self.evaluator.identity()} if self.evaluator is not None
               and self.evaluator.kind != "train" else {}),
        }

    def planned(self) -> dict[str, int]:
        """What one run of this recipe trains on and for, by the trainer's own arithmetic
        (:func:`nas_harness.train.train`): ``images`` (distinct training images), ``steps`` (planned optimiser
        steps: the step budget, or ceil(epochs x steps per epoch)), ``seen`` (steps x batch: training images
        processed) and ``resolution`` (px).  Loads the proxy data (cached) to count its training images."""
        from nas_harness.data import load_proxy

        n = len(load_proxy(self.data).train_y)
        t = self.train
        batch = max(1, min(int(t.batch_size), n))
        per_epoch = max(1, n // batch)
        steps = int(t.steps) if t.steps is not None else max(1, math.ceil(float(t.epochs or 0) * per_epoch))
        return {"images": n, "steps": steps, "seen": steps * batch, "resolution": int(self.data.resolution)}

    def budget(self) -> str:
        """'2 epochs' / '500 steps'."""
        t = self.train
        return f"{t.epochs:g} epoch(s)" if t.epochs is not None else f"{t.steps} steps"

    def describe(self) -> str:
        if self.evaluator is not None and self.evaluator.kind != "train":
            return f"{self.evaluator.describe()} (evaluator {self.evaluator.kind!r})"
        d = self.data
        subset = (f"{d.train_subset} training images" if d.train_subset else
                  f"{d.per_class} per class" if d.per_class else "the full training split")
        return (f"{d.dataset} at {d.resolution} px, {subset}, val_size {d.val_size}; {self.budget()}, batch "
                f"{self.train.batch_size}, {self.train.optimizer} lr {self.train.lr:g}, {self.train.schedule}; "
                f"threads {self.train.threads}")


def study_recipe(study: Any) -> StudyRecipe:
    """The recipe of a stored study (an Optuna study written by ``nas-harness search``)."""
    from nas_harness.data import ProxyConfig
    from nas_harness.records import storage_label
    from nas_harness.results import damaged
    from nas_harness.train import TrainConfig
    from nas_harness.trial import TrialSettings

    attrs = study.user_attrs
    cfg = attrs.get("config")
    if not isinstance(cfg, dict) or cfg.get("data") is None or cfg.get("train") is None:
        if cfg is not None and not isinstance(cfg, dict):
            raise damaged(study, "config", cfg, "a table")
        raise ConfigError(f"study {study.study_name!r} holds no stored recipe (its 'config' attribute is missing): "
                          "it was not written by `nas-harness search`, so its archs cannot be retrained the same way")
    for key in ("data", "train", "trial"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise damaged(study, f"config.{key}", cfg[key], "a table")
    comparable = attrs.get("comparable")
    if comparable is not None and not isinstance(comparable, dict):
        raise damaged(study, "comparable", comparable, "a table")
    comparable = comparable or {}
    seed_key = "comparable.seed" if "seed" in comparable else "config.seed"
    seed = comparable.get("seed", cfg.get("seed", 0))
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise damaged(study, seed_key, seed, "an integer in [0, 2**32)")
    train = dict(cfg["train"])
    fixed = comparable.get("train")
    if fixed is not None and not isinstance(fixed, dict):
        raise damaged(study, "comparable.train", fixed, "a table")
    fixed = fixed or {}
    train.update({k: v for k, v in fixed.items() if k in ("seed", "threads")})
    if "seed" not in fixed:
        train["seed"] = seed
    try:
        data = ProxyConfig.from_dict(cfg["data"], "data")
        tr = TrainConfig.from_dict({k: v for k, v in train.items() if v is not None or k == "threads"}, "train")
        trial = TrialSettings.from_dict(cfg.get("trial") or {}, "trial")
    except ConfigError as exc:
        raise ConfigError(f"storage {storage_label(study)}: study {study.study_name!r}: its stored recipe is not valid "
                          f"any more: {exc}") from None
    return StudyRecipe(str(study.study_name), data, tr, trial, seed)


def study_evaluator(study: Any) -> str:
    """The ``[evaluator] kind`` a stored study scored its trials with ('train' for studies made before evaluators
    existed)."""
    cfg = study.user_attrs.get("config")
    ev = cfg.get("evaluator") if isinstance(cfg, dict) else None
    kind = ev.get("kind") if isinstance(ev, dict) else None
    return kind if isinstance(kind, str) and kind else "train"


#: The file (in ``--out``) that holds the runs of a study whose own storage cannot be written.
RUNS_FILE = "runs.db"


@dataclass(frozen=True)
class RunsStorage:
    """Where ``confirm``/``fidelity`` store their runs: ``storage`` (a URL or an open Optuna storage) and its
    ``label`` for messages; ``moved``: not the study's own storage (a read-only one), but ``--out``'s
    :data:`RUNS_FILE`."""

    storage: Any
    label: str
    moved: bool = False


def open_study_source(source: Any, study_name: str | None = None, scaling: bool = False,
                      out_dir: Any = None, what: str = "confirm") -> tuple[Any, Any, RunsStorage]:
    """(StudySource, Optuna study, where the runs go) of a results folder / storage; ``scaling``: its
    ``<study>-scaling`` study.

    The runs are stored beside the study, in its own storage, when that can be written.  When it cannot (a
    read-only copy of someone's results folder, an archive) and ``out_dir`` is given, the study is read
    read-only and the runs go to ``out_dir/runs.db`` (SQLite), so that nothing is written into the read-only
    folder; without ``out_dir`` the one-line error names the file and why ``what`` would write it."""
    from nas_harness.results import load_study

    try:
        src = _resolve(source, study_name, scaling, write=True)
    except (ConfigError, OSError) as exc:  # OSError: a read-only or full file system met while opening
        try:
            src = _resolve(source, study_name, scaling, write=False)
        except (ConfigError, OSError):
            raise exc from None
        if out_dir is None:
            if not isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{exc} ({what} stores its runs in the study's own storage, beside its trials; give "
                              f"--out FOLDER to store them in FOLDER/{RUNS_FILE} instead)") from None
        path = Path(out_dir) / RUNS_FILE
        return src, load_study(src), RunsStorage(f"sqlite:///{path}", str(path), moved=True)
    return src, load_study(src), RunsStorage(src.storage, src.label)


def _resolve(source: Any, study_name: str | None, scaling: bool, write: bool) -> Any:
    from nas_harness.results import resolve_source

    src = resolve_source(source, study_name, write=write)
    if scaling and not src.study_name.endswith("-scaling"):
        name = f"{src.study_name}-scaling"
        try:
            src = resolve_source(source, name, write=write)
        except ConfigError:
            raise ConfigError(f"--scaling: no study {name!r} in {src.label}; run `nas-harness search STUDY.toml "
                              "--scaling` first") from None
    return src


def fresh_seeds(n: int, used: int) -> list[int]:
    """``n`` seeds other than the search's (``used``): its arch ranking was chosen on that seed's results, so
    re-using it would carry the selection into the confirmation."""
    return [s for s in range(n + 1) if s != used][:n]


@dataclass(frozen=True)
class Candidate:
    """One arch to re-evaluate: ``job`` (its key in the job store), display ``label``, ``kind`` ('search',
    'reference' or 'scaling'), the arch string, its search result, and the other names it goes by."""

    job: str
    label: str
    kind: str
    arch: str
    macs: float
    params: float
    search_val: float
    search_val_n: float
    number: int
    resolution: int | None = None
    macs_resolution: int | None = None
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    latency_ms: float = math.nan
    costs: dict[str, float] = field(default_factory=dict)  # the search's other cost columns (a table's)

    @property
    def name(self) -> str:
        return " = ".join((self.label, *self.aliases))

    def cost(self, key: str = "macs") -> float:
        """The search's cost of this arch in column ``key`` (``macs``, ``params``, ``latency_ms`` or a benchmark
        table's measurement kept in :attr:`costs`; NaN if unknown)."""
        own = {"macs": self.macs, "params": self.params, "latency_ms": self.latency_ms}
        return own[key] if key in own else self.costs.get(key, math.nan)


def _num(v: Any) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError):
        return math.nan
    return out


def _candidate(r: Any, kind: str) -> Candidate:
    return Candidate(job=str(r["arch"]), label=str(r["name"]), kind=kind, arch=str(r["arch"]), macs=_num(r["macs"]),
                     params=_num(r["params"]), search_val=_num(r["val_acc"]), search_val_n=_num(r["val_n"]),
                     number=int(r["number"]), latency_ms=_num(r.get("latency_ms")),
                     costs={k: _num(r.get(k)) for k in COSTS if k not in ("macs", "params", "latency_ms") and k in r})


def search_candidates(df: pd.DataFrame, top: int, by: str = "pareto") -> list[Candidate]:
    """The ``top`` best search archs by the *validation* metric ``by`` ('pareto': the Pareto front of
    val_acc vs the study's cost (:func:`~nas_harness.results.study_cost`), most accurate first; 'val_acc';
    'reward'), each arch once."""
    from nas_harness.results import rank_trials

    if by not in ("pareto", "val_acc", "reward"):
        raise ConfigError(f"--by: {by!r} is not allowed (allowed: pareto, val_acc, reward); the test split is never "
                          "used to select archs")
    ranked = rank_trials(df, by).drop_duplicates(subset=["arch"], keep="first")
    return [_candidate(r, "search") for _, r in ranked.head(max(0, int(top))).iterrows()]


def reference_candidates(df: pd.DataFrame) -> list[Candidate]:
    """Every reference arch of the study that trained its full budget (each arch once)."""
    from nas_harness.results import eligible, study_cost

    refs = eligible(df, study_cost(df), "val_acc", include_reference=True)
    refs = refs[refs["is_reference"]].sort_values("number").drop_duplicates(subset=["arch"], keep="first")
    return [_candidate(r, "reference") for _, r in refs.iterrows()]


def merge_candidates(cands: list[Candidate]) -> list[Candidate]:
    """One candidate per job (a reference that is also a top search arch is trained once; its names are
    kept as aliases)."""
    out: dict[str, Candidate] = {}
    for c in cands:
        if c.job in out:
            first = out[c.job]
            if c.label not in (first.label, *first.aliases):
                out[c.job] = Candidate(**{**first.__dict__, "aliases": (*first.aliases, c.label),
                                          "kind": "reference" if "reference" in (first.kind, c.kind) else first.kind})
        else:
            out[c.job] = c
    return list(out.values())
