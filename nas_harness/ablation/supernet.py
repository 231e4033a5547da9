"""Ablations in the supernet: each variant scored with a weight-sharing supernet's inherited weights, next to
its from-scratch runs, and whether the two verdicts (variant vs baseline) agree.

An ablation file's ``[supernet]`` table (the keys of a study's ``[supernet]``, plus ``space`` and the sampler's
``sample_skip``) trains one supernet, once, over a space that contains the base arch: by default the smallest
space holding the base and every variant a supernet can hold (per stage the union of their kernels, expansions,
SE on/off, repeats and widths), or the ``[supernet.space]`` table given (a study's ``[space]`` keys).  It is
trained like a study's supernet (durable per-epoch checkpoint under ``<results>/<name>/supernet/``, resumable
bit-exactly, locally or as one Ray job).  Variants that differ from the base in what no space varies
(activation, stochastic depth, dropout, stem, head, strides, an SE ratio of its own) or that lie outside the
given space are reported as *not in the supernet* with the reason, never scored as another arch.  Residual skips:
a search space keeps the base's skips, so ``no_skip`` is a subnet only of a supernet whose sampler also drew
every stage without its skip (``sample_skip``; on by default when a variant drops a skip).

Scoring: for every (variant, seed) the subnet takes its weights from the supernet, its BatchNorm statistics are
re-estimated on ``bn_batches`` training batches drawn with that seed (the *recalibration seeds* are the ablation's
seeds), and its accuracy is measured on the validation split (one stored result per variant and seed, in the
ablation's storage as study ``<name>-supernet-<supernet id>``: ``kill -9`` loses nothing finished). The verdict of
variant vs baseline has the from-scratch rule's shape (beats / worse / tied within noise, from a 95% interval): the
interval joins the paired-t interval of the per-seed differences (recalibration noise;
:func:`~nas_harness.results.stats.paired_delta`) and Newcombe's interval of the difference of the two mean
accuracies over the validation images (which validation images happened to be drawn;
:func:`~nas_harness.results.stats.accuracy_difference`, conservative for paired images); a side is declared only
when both exclude 0.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from nas_harness._config import Bool, allowed
from nas_harness.arch import Arch
from nas_harness.errors import ConfigError
from nas_harness.results.stats import (
    TIED,
    accuracy_difference,
    accuracy_interval,
    paired_delta,
    summarize,
    verdict,
)
from nas_harness.space import SearchSpace, StageChoices
from nas_harness.supernet import ACCURACY_NOTE, SupernetConfig, SupernetEvaluator, why_not_subnet

if TYPE_CHECKING:
    from .config import AblationConfig
    from .runner import RunRecord
    from .stats import VariantStats

__all__ = ["AblationSupernet", "SupernetRow", "ablation_space", "agreement", "load_supernet_records",
           "run_supernet_scores", "supernet_evaluator", "supernet_rows"]

AGREE, DISAGREE, UNDECIDED = "agree", "disagree", "undecided"


class AblationSupernet(SupernetConfig):
    """``[supernet]`` of an ablation file: score every variant with the inherited weights of one supernet (the
    keys of a study's ``[supernet]``; the recalibration seeds are the ablation's ``seeds``)."""

    space: Annotated[dict[str, Any] | None, Field(description=(
        "the supernet's search space around the base arch (a study's [space] keys); omit for the smallest space "
        "holding the base and every variant a supernet can hold"))] = None
    sample_skip: Annotated[Bool | None, Field(json_schema_extra=allowed("true, false, or omit"), description=(
        "also train every stage without its residual skip (omit: on when a variant drops a skip the base has)"))
                           ] = None

    def settings(self, sample_skip: bool) -> SupernetConfig:
        """The supernet's own settings (a study's ``[supernet]`` table)."""
        d = self.model_dump(mode="json", exclude={"space", "sample_skip"}, exclude_unset=True)
        return SupernetConfig.from_dict({**d, "sample_skip": sample_skip}, "supernet")


# --------------------------------------------------------------------------- the space and its members


def _union(space: SearchSpace, arch: Arch) -> SearchSpace | None:
    """``space`` widened by ``arch``'s per-stage choices (None when the stage counts differ)."""
    if len(arch.stages) != len(space.base.stages):
        return None
    stages = []
    for sc, st, b in zip(space.stages, arch.stages, space.base.stages):
        width = st.channels / b.channels
        stages.append(StageChoices(
            kernels=tuple(sorted({*sc.kernels, st.kernel})), expands=tuple(sorted({*sc.expands, st.expand})),
            se=tuple(sorted({*sc.se, st.se is not None}, reverse=True)),
            repeats=tuple(sorted({*sc.repeats, st.repeats})),
            widths=sc.widths if any(abs(w - width) < 1e-9 for w in sc.widths) else tuple(sorted({*sc.widths, width}))))
    try:
        return SearchSpace(space.base, stages, space.se_ratio)
    except ConfigError:
        return None


def _skip_dropped(base: Arch, arch: Arch) -> bool:
    return len(arch.stages) == len(base.stages) and any(b.skip and not st.skip
                                                       for st, b in zip(arch.stages, base.stages))


def ablation_space(base: Arch, archs: Mapping[str, Arch], table: AblationSupernet
                   ) -> tuple[SearchSpace, bool, dict[str, str]]:
    """The supernet's space, whether its sampler draws skips, and the variants it does not hold (with why).

    ``table.space`` given: that space around ``base`` (ConfigError naming ``supernet.space...`` when invalid);
    else the smallest space holding ``base`` and every variant a supernet can hold (a variant is added only
    when it is then a member: an arch differing in what no space varies stays out)."""
    sample_skip = (table.sample_skip if table.sample_skip is not None
                   else any(_skip_dropped(base, a) for a in archs.values()))
    se_ratio = next((st.se for st in base.stages if st.se is not None), 0.25)
    if table.space is not None:
        space = SearchSpace.from_dict(table.space, base, where="supernet.space")
    else:
        space = SearchSpace(base, [StageChoices((st.kernel,), (st.expand,), (st.se is not None,), (st.repeats,),
                                                (1.0,)) for st in base.stages], se_ratio)
        for arch in archs.values():
            wider = _union(space, arch)
            if wider is not None and why_not_subnet(wider, arch, sample_skip) is None:
                space = wider
    if why_not_subnet(space, base, sample_skip) is not None:
        raise ConfigError(f"supernet.space: does not contain the base arch: {why_not_subnet(space, base, sample_skip)}")
    missing = {v: r for v, a in archs.items() if (r := why_not_subnet(space, a, sample_skip)) is not None}
    return space, sample_skip, missing


def supernet_evaluator(cfg: AblationConfig, train: Any) -> SupernetEvaluator:
    """The ablation's supernet evaluator (its folder ``<results>/<name>/``; BatchNorm re-estimated per seed)."""
    table = cfg.supernet
    if table is None:
        raise ConfigError("supernet: the ablation file has no [supernet] table")
    return SupernetEvaluator(table.settings(cfg.supernet_plan[1]), _context(cfg, train), bn_seed_per_trial=True)


def _context(cfg: AblationConfig, train: Any) -> Any:
    from nas_harness.evaluators import EvalContext

    return EvalContext(space=cfg.supernet_plan[0], data=cfg.data, train=train, trial=cfg.trial, seed=train.seed,
                       study_dir=cfg.out_dir)


# --------------------------------------------------------------------------- scoring, durably


def _store_name(cfg: AblationConfig, train: Any) -> str:
    """``<name>-supernet-<supernet id>``: the scores of one supernet (another space or recipe is another store,
    and the scores of the old one stay where they were)."""
    from nas_harness.data import load_proxy

    return f"{cfg.name}-supernet-{supernet_evaluator(cfg, train).supernet_id(load_proxy(cfg.data))}"


def _store(cfg: AblationConfig, train: Any) -> Any:
    from nas_harness.evaluation.store import JobStore

    return JobStore(cfg.storage_url, _store_name(cfg, train), group_attr="variant", value_keys=("val_acc",))


def run_supernet_scores(cfg: AblationConfig, train: Any, *, retry_failed: bool = False, progress: bool = True,
                        log: Callable[[str], None] | None = None) -> list[RunRecord]:
    """Train the ablation's supernet (once; resumed if interrupted), then score every (variant, seed) pair of
    the variants it holds that is not stored yet; return the stored records of every such pair."""
    from nas_harness.backends import Job
    from nas_harness.data import load_proxy
    from nas_harness.evaluation.store import run_stored_jobs
    from nas_harness.trial import TrialSpec

    from .runner import RunRecord

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    ev = supernet_evaluator(cfg, train)
    data = load_proxy(cfg.data)
    _, _, missing = cfg.supernet_plan
    held = [v for v in cfg.variants if v not in missing]
    store = _store(cfg, train)
    store.bind({"supernet": ev.key(data), "scoring": ev.identity(), "trial": cfg.trial.comparable()},
               {v: str(cfg.archs[v]) for v in held}, kind="ablation-supernet",
               what="supernet scores of ablation")
    for v, why in missing.items():
        say(f"supernet: variant {v!r} is not in the supernet ({why}); not scored")
    plan = [(v, s) for s in cfg.seeds for v in held]
    done = store.records()
    n_stored = sum(1 for p in plan if p in done and (done[p].state == "ok" or not retry_failed))
    say(f"supernet scores: {len(held)} variants x {len(cfg.seeds)} seeds = {len(plan)}; {n_stored} already stored, "
        f"{len(plan) - n_stored} to score (study {store.name})")
    if n_stored < len(plan):
        ev.prepare(_context(cfg, train), say)  # trained once (or resumed) before any pair is scored
    t = cfg.trial
    classes = t.macs_num_classes or data.num_classes

    def make_jobs(todo: list[tuple[str, int]]) -> list[Any]:
        return [Job(key=f"{v}/seed{s}/supernet", spec=TrialSpec(
            arch=cfg.archs[v], data=cfg.data, train=train.replace(seed=s), seed=s, stem_stride=t.stem_stride,
            macs_resolution=t.macs_resolution, macs_num_classes=classes, evaluate_test=False, evaluator=ev))
            for v, s in todo]

    def describe(run: Any) -> str:
        if run.state != "ok":
            return f"supernet {run.group} seed {run.seed}: FAILED: {run.error}"
        return f"supernet {run.group} seed {run.seed}: val {run.metrics.get('val_acc', math.nan):.4f} (inherited)"

    out = run_stored_jobs(store, plan, make_jobs, backend=cfg.run.backend, ray=cfg.ray, retry_failed=retry_failed,
                          progress=progress, desc=f"{cfg.name} (supernet)", describe=describe, log=say)
    return [RunRecord.of(r) for r in out.runs]


def load_supernet_records(cfg: AblationConfig) -> list[RunRecord]:
    """The stored supernet scores of ``cfg``'s planned pairs (for ``--report-only``)."""
    import optuna

    from nas_harness.records import open_storage

    from .runner import RunRecord

    if cfg.supernet is None:
        return []
    train = cfg.train  # the thread count, the one key bind() fixes, is no part of the supernet's identity
    if _store_name(cfg, train) not in optuna.get_all_study_names(open_storage(cfg.storage_url)):
        return []  # nothing scored yet (and nothing created by looking)
    final = {k: RunRecord.of(r) for k, r in _store(cfg, train).records().items()}
    _, _, missing = cfg.supernet_plan
    return [final[(v, s)] for s in cfg.seeds for v in cfg.variants if v not in missing and (v, s) in final]


# --------------------------------------------------------------------------- the verdicts side by side


def agreement(scratch: str | None, supernet: str | None) -> str:
    """Whether two verdicts of variant vs baseline agree: ``agree`` / ``disagree``, or ``undecided`` when either
    is missing (no runs, fewer than two from-scratch seeds, not in the supernet)."""
    if scratch is None or supernet is None:
        return UNDECIDED
    return AGREE if scratch == supernet else DISAGREE


@dataclass(frozen=True)
class SupernetRow:
    """One variant scored in the supernet: mean validation accuracy over the recalibration seeds with the
    Wilson interval of that accuracy over ``val_n`` images, Δ vs the baseline with its interval (see the module
    doc), the supernet's verdict, the from-scratch verdict and whether they agree.  ``not_in``: why the variant
    is not in the supernet (then nothing is scored)."""

    variant: str
    not_in: str | None
    n: int
    val_acc: float
    val_low: float
    val_high: float
    val_n: int | None
    delta: float
    delta_low: float
    delta_high: float
    verdict: str | None
    scratch_verdict: str | None
    agreement: str

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _delta(var: Mapping[int, float], base: Mapping[int, float], val_n: int | None) -> tuple[float, float, float]:
    seeds = sorted(set(var) & set(base))
    if not seeds:
        return math.nan, math.nan, math.nan
    pd = paired_delta({s: var[s] for s in seeds}, {s: base[s] for s in seeds})
    a = summarize([var[s] for s in seeds]).mean
    b = summarize([base[s] for s in seeds]).mean
    nd = accuracy_difference(a, val_n, b, val_n)
    lows = [x for x in (pd.ci_low, nd.low) if math.isfinite(x)]
    highs = [x for x in (pd.ci_high, nd.high) if math.isfinite(x)]
    if not lows or not highs:
        return pd.mean, math.nan, math.nan
    return pd.mean, min(lows), max(highs)


def supernet_rows(cfg: AblationConfig, records: Sequence[RunRecord], scratch: Sequence[VariantStats]
                  ) -> list[SupernetRow]:
    """One :class:`SupernetRow` per variant of ``cfg`` (in order), from the stored supernet scores ``records``
    and the from-scratch table ``scratch``."""
    _, _, missing = cfg.supernet_plan
    acc: dict[str, dict[int, float]] = {v: {} for v in cfg.variants}
    sizes: dict[str, int] = {}
    for r in records:
        if r.state == "ok" and r.variant in acc and r.metrics.get("val_acc") is not None:
            acc[r.variant][r.seed] = float(r.metrics["val_acc"])
            if r.metrics.get("val_n"):
                sizes[r.variant] = int(r.metrics["val_n"])
    by_scratch = {r.variant: r for r in scratch}
    base = cfg.baseline
    rows = []
    for v in cfg.variants:
        sv = by_scratch.get(v)
        d = sv.delta_test if sv is not None else None
        scratch_verdict = (None if v == base or d is None or d.n < 2 else d.verdict)
        n_val = sizes.get(v)
        if v in missing or not acc[v]:
            rows.append(SupernetRow(v, missing.get(v), 0, math.nan, math.nan, math.nan, n_val, math.nan, math.nan,
                                    math.nan, None, scratch_verdict, UNDECIDED))
            continue
        mean = summarize(list(acc[v].values())).mean
        lo, hi = accuracy_interval(mean, n_val)
        if v == base or base is None or base in missing or not acc.get(base):
            delta = (math.nan, math.nan, math.nan)
            sn = None
        else:
            delta = _delta(acc[v], acc[base], n_val)
            sn = verdict(delta[1], delta[2]) if math.isfinite(delta[1]) else TIED
        rows.append(SupernetRow(v, None, len(acc[v]), mean, lo, hi, n_val, *delta, sn, scratch_verdict,
                                UNDECIDED if v == base else agreement(scratch_verdict, sn)))
    return rows


def supernet_blocks(cfg: AblationConfig, rows: Sequence[SupernetRow], records: Sequence[RunRecord]) -> list[Any]:
    """The report's "Scored in the supernet" section: settings, the table and how many verdicts agree."""
    from nas_harness.report.document import Bullets, Heading, Para, Table

    def pct(x: float, signed: bool = False) -> str:
        return "–" if not math.isfinite(x) else (f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}")

    ok = [r for r in records if r.state == "ok"]
    m = ok[0].metrics if ok else {}
    space, sample_skip, _ = cfg.supernet_plan  # a ConfigError without [supernet]
    table = cfg.supernet if cfg.supernet is not None else AblationSupernet()
    ident = (f"supernet `{m.get('supernet_id', '?')}` (weights `{m.get('supernet_weights', '?')}`, "
             f"{m.get('supernet_epochs', '?')} epochs, {m.get('supernet_sampling', table.sampling)} sampling"
             f"{', skips sampled' if sample_skip else ''}) over a space of {space.size:,} archs")
    settings = (f"Scores are {ACCURACY_NOTE}: {ident}; BatchNorm re-estimated on {table.bn_batches} x "
                f"{table.bn_batch_size} training images drawn with each recalibration seed {list(cfg.seeds)}; "
                f"accuracy on the validation split ({m.get('val_n', '?')} images), mean over the seeds with its "
                f"Wilson 95% interval.  Δ = variant − {cfg.baseline} per seed; its 95% interval joins the paired t "
                "over the seeds and Newcombe's interval over the validation images, and the verdict has the "
                "from-scratch rule (beats when above 0, worse when below, else tied within noise).")
    body = []
    for r in rows:
        is_base = r.variant == cfg.baseline
        scratch = "–" if is_base else (r.scratch_verdict or UNDECIDED)
        if r.not_in is not None:
            body.append([r.variant, f"not in the supernet: {r.not_in}", "–", "–", scratch, "–" if is_base else
                         UNDECIDED])
            continue
        ci = f" [{pct(r.delta_low, True)}, {pct(r.delta_high, True)}]" if math.isfinite(r.delta_low) else ""
        body.append([r.variant, f"{pct(r.val_acc)} [{pct(r.val_low)}, {pct(r.val_high)}] ({r.n} seeds)",
                     "–" if is_base else f"{pct(r.delta, True)}{ci}", r.verdict or "–", scratch,
                     "–" if is_base else r.agreement])
    head = ["variant", "val acc % (inherited) [Wilson 95% CI]", f"Δ val vs {cfg.baseline} pp [95% CI]",
            "supernet verdict", "from-scratch verdict", "verdicts"]
    decided = [r for r in rows if r.agreement in (AGREE, DISAGREE)]
    agree = [r.variant for r in decided if r.agreement == AGREE]
    disagree = [r.variant for r in decided if r.agreement == DISAGREE]
    summary = (f"The verdicts agree for {len(agree)} of {len(decided)} variants decided both ways"
               + (f"; they disagree for {', '.join(disagree)}" if disagree else "") + ".")
    failed = [f"{r.variant} seed {r.seed}: {r.error}" for r in records if r.state != "ok"]
    return [Heading("Scored in the supernet (inherited weights)", 3), Para(settings), Table(head, body, right={1, 2}),
            Para(summary), *([Para("Failed supernet scores:"), Bullets(failed)] if failed else [])]
