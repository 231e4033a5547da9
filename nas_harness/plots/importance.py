"""Which search-space choices matter: Optuna's importance evaluators over completed full-budget trials.

PED-ANOVA is the default because it needs nothing beyond Optuna; fANOVA and mean-decrease-impurity need
scikit-learn and are used when asked for and installed.  Trials stopped early are left out (their accuracy
comes from a different budget), and parameters with a single choice are dropped (they cannot matter).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from nas_harness.errors import ConfigError
from nas_harness.plots._style import PALETTE, SINGLE_COLUMN, new_figure, paper_style

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from matplotlib.figure import Figure

EVALUATORS = ("ped_anova", "fanova", "mdi")


#: Fewer usable trials than this and the importance figure carries a caveat.
FEW_TRIALS = 20


def usable_trials(study: optuna.Study, target: str = "val_acc") -> list[optuna.trial.FrozenTrial]:
    """COMPLETE full-budget trials with ``target`` and parameters: what the importances are computed from."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(target) is not None and t.user_attrs.get("full_budget", True) and t.params]


def importance_caveat(importances: dict[str, float], n_trials: int) -> str | None:
    """A warning for the figure when the ranking cannot be trusted: fewer than :data:`FEW_TRIALS` trials, or
    choices tied at the same importance (to 3 decimals); None otherwise."""
    values = [round(v, 3) for v in importances.values()]
    ties = {v: values.count(v) for v in values if values.count(v) > 1}
    parts = []
    if n_trials < FEW_TRIALS:
        parts.append(f"only {n_trials} trials")
    if ties:
        (value, most), *rest = sorted(ties.items(), key=lambda kv: (-kv[1], -kv[0]))
        parts.append(f"{most} choices tied at {value:.3f}"
                     + (f" (and {sum(n for _, n in rest)} more in {len(rest)} other ties)" if rest else ""))
    if not parts:
        return None
    return "Caveat: " + "; ".join(parts) + ": too little data to rank these choices"


def param_importances(study: optuna.Study, target: str = "val_acc", evaluator: str = "ped_anova",
                      seed: int = 0) -> dict[str, float]:
    """Normalised importances of the study's params for user attr ``target`` (largest first).

    Raises ConfigError when fewer than 2 usable trials exist or the evaluator is unknown/unavailable.
    """
    import optuna

    if evaluator not in EVALUATORS:
        raise ConfigError(f"importance evaluator: '{evaluator}' is not allowed (allowed: {', '.join(EVALUATORS)})")
    trials = usable_trials(study, target)
    if len(trials) < 2:
        raise ConfigError(f"importance: need >= 2 completed full-budget trials with '{target}', got {len(trials)}")
    varying = sorted({k for t in trials for k in t.params if len({repr(u.params.get(k)) for u in trials}) > 1})
    if not varying:
        raise ConfigError("importance: no parameter takes more than one value in the completed trials")
    # Importance evaluators need every trial to hold every param: keep trials that do (references outside
    # the space were enqueued without params).
    trials = [t for t in trials if all(k in t.params for k in varying)]
    copy = optuna.create_study(directions=["maximize"])
    for t in trials:
        copy.add_trial(optuna.trial.create_trial(
            value=float(t.user_attrs[target]), params={k: t.params[k] for k in varying},
            distributions={k: t.distributions[k] for k in varying}))
    try:
        ev = {"ped_anova": lambda: optuna.importance.PedAnovaImportanceEvaluator(),
              "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=seed),
              "mdi": lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)}[evaluator]()
    except ImportError as exc:
        raise ConfigError(f"importance evaluator: '{evaluator}' needs scikit-learn ({exc})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "few trials per regime" warnings: expected on small studies
        imp = optuna.importance.get_param_importances(copy, evaluator=ev, target=lambda t: t.value)
    # Ties come back in an order that changes with the process's string hashing: break them by name, so the
    # same study gives the same figures (and the same "most important choice") every time.
    return dict(sorted(imp.items(), key=lambda kv: (-kv[1], kv[0])))


def plot_importance(study: optuna.Study, target: str = "val_acc", evaluator: str = "ped_anova", top: int = 15,
                    title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN) -> Figure:
    """Horizontal bars of the ``top`` most important search choices."""
    imp = param_importances(study, target, evaluator)
    n = sum(all(k in t.params for k in imp) for t in usable_trials(study, target))  # the trials it was drawn from
    caveat = importance_caveat(imp, n)
    items = list(imp.items())[:top]
    with paper_style():
        fig, ax = new_figure((size[0], max(size[1], 0.9 + 0.14 * len(items)) + (0.3 if caveat else 0.0)))
        names = [k for k, _ in items][::-1]
        ax.barh(names, [v for _, v in items][::-1], color=PALETTE["search"], height=0.7)
        ax.set_xlabel(f"Importance for {target} ({evaluator.replace('_', '-')}, normalised; {n} trials)")
        ax.set_title(title or f"{study.study_name}: which choices matter")
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="y", length=0)
        if caveat:
            import textwrap

            fig.supxlabel("\n".join(textwrap.wrap(caveat, 70)), fontsize=6, color="#B22222")
    return fig
