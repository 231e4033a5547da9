"""Pick an architecture out of a study and hand it over in every form a researcher needs next.

The arch string is the single source of truth (it round-trips through ``parse_arch``); the JSON spec and the
``build_model`` call are derived from it so that the three forms can never disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_harness._config import write_text
from nas_harness.errors import ConfigError
from nas_harness.results.pareto import cost_text, pareto_front, study_cost

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from nas_harness.arch import Arch

RANK_BY = ("auto", "pareto", "val_acc", "reward", "test_acc")
_DATASET_CLASSES = {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "mnist": 10, "synthetic": 10}


def study_data_settings(df: pd.DataFrame) -> dict[str, Any]:
    """num_classes / in_channels / resolution the study trained with, read from its ``config`` attr."""
    cfg = df.attrs.get("config") or {}
    data = cfg.get("data") or {}
    trial = cfg.get("trial") or {}
    out: dict[str, Any] = {
        "num_classes": data.get("num_classes") or _DATASET_CLASSES.get(str(data.get("dataset", "")).lower()),
        "in_channels": data.get("channels"),
        "resolution": data.get("resolution"),
        "stem_stride": trial.get("stem_stride", cfg.get("stem_stride")),
    }
    return out


def counted_classes(df: pd.DataFrame) -> int:
    """Classifier size at which the study's trials counted MACs and params (``[trial] macs_num_classes``,
    1000 by default): the records describe the *deployed* network, 3-channel input, not the trained proxy."""
    trial = (df.attrs.get("config") or {}).get("trial") or {}
    n = trial.get("macs_num_classes") if isinstance(trial, dict) else None
    return int(n) if isinstance(n, (int, float)) and n >= 1 else 1000


def params_note(df: pd.DataFrame, build_params: int | None = None, num_classes: int | None = None,
                in_channels: int | None = None) -> str:
    """Why two parameter counts of one arch differ: the study's records count the deployed network
    (``counted_classes`` outputs, 3 input channels); the trained proxy (and the exported ``build_model`` call)
    has the data set's classes and channels.  ``build_params`` etc. describe the latter when known."""
    settings = study_data_settings(df)
    nc = num_classes or settings["num_classes"]
    ch = in_channels or settings["in_channels"]
    text = (f"Parameter counts in the study's records are of the deployed network: {counted_classes(df):,} classes, "
            "3 input channels (like MACs, counted at the cost the arch would have in use)")
    if nc and ch:
        built = f" ({build_params:,} parameters)" if build_params is not None else ""
        text += (f"; the proxy network trained in the search, and the exported build_model call{built}, has the "
                 f"data set's {int(nc):,} classes and {int(ch)} input channel{'s' if int(ch) != 1 else ''}, so its "
                 "count is smaller")
    return text + "."


def resolve_rank_by(df: pd.DataFrame, by: str = "auto") -> str:
    """The ranking ``by`` means for this study: ``auto`` is ``reward`` for a reward study (``val_acc`` when no
    trial has a reward), ``pareto`` for a multi-objective one and ``val_acc`` otherwise; the others are
    themselves.  ConfigError for a name not in :data:`RANK_BY`."""
    if by not in RANK_BY:
        raise ConfigError(f"rank_by: '{by}' is not allowed (allowed: {', '.join(RANK_BY)})")
    if by == "auto":
        objective = df.attrs.get("objective")
        by = {"reward": "reward", "multi": "pareto"}.get(str(objective), "val_acc")
        if by == "reward" and df["reward"].isna().all():
            by = "val_acc"
    return by


def rank_trials(df: pd.DataFrame, by: str = "auto") -> pd.DataFrame:
    """Eligible search trials (COMPLETE, full budget, feasible, not a reference), best first.

    ``auto`` ranks by reward for a reward study, along the Pareto front (most accurate first) for a
    multi-objective study, and by validation accuracy otherwise.  The front and the tie-break are on the
    study's own cost (:func:`~nas_harness.results.study_cost`).
    """
    by = resolve_rank_by(df, by)
    base = df[(df["state"] == "COMPLETE") & df["full_budget"] & df["feasible"] & ~df["is_reference"]
              & df["arch"].notna()]
    cost = study_cost(df)
    if by == "pareto":
        return pareto_front(base, cost).sort_values("front_rank")
    base = base[base[by].notna()]
    return base.sort_values([by, cost, "number"], ascending=[False, True, True])


@dataclass
class ExportedArch:
    """One chosen architecture: its string, JSON spec, metrics and a ready builder call."""

    study_name: str
    trial: int
    name: str
    arch: Arch
    metrics: dict[str, float]
    num_classes: int
    in_channels: int
    stem_stride: int | None = None
    family: list[dict[str, Any]] = field(default_factory=list)
    cost: str = "macs"  # the study's cost column (study_cost)
    build_params: int | None = None  # parameters of the builder call's network (its classes and channels)
    params_note: str = ""  # why build_params differs from metrics["params"]
    rank: int | None = None  # the trial's place in ``ranked_by`` (None: picked by trial number)
    ranked_by: str | None = None  # the ranking it was picked from (resolve_rank_by: never "auto")

    @property
    def header(self) -> str:
        """One line: study, trial, accuracy and the study's cost (``# s trial 3 (#3): val_acc 81.20%, ...``)."""
        m = self.metrics
        acc = f"val_acc {m['val_acc']:.2%}" if "val_acc" in m else "no val_acc"
        cost = cost_text(m.get(self.cost), self.cost)
        return f"# {self.study_name} trial {self.trial} ({self.name}): {acc}" + (f", {cost}" if cost else "")

    @property
    def arch_string(self) -> str:
        return str(self.arch)

    def builder_code(self) -> str:
        """Python that rebuilds the network (what to paste into a notebook)."""
        extra = f", stem_stride={self.stem_stride}" if self.stem_stride else ""
        note = ""
        if self.build_params is not None:
            recorded = self.metrics.get("params")
            note = (f"# {self.build_params:,} parameters at {self.num_classes:,} classes, {self.in_channels} input "
                    f"channel(s)" + (f"; the study's records count {int(recorded):,} for the deployed network "
                                     "(see params_note)" if recorded is not None else "") + "\n")
        return (
            note
            + "from nas_harness.arch import parse_arch\n"
            "from nas_harness.model import build_model\n\n"
            f'model = build_model(parse_arch("{self.arch_string}"), num_classes={self.num_classes}, '
            f"in_channels={self.in_channels}{extra})\n"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name, "trial": self.trial, "name": self.name, "arch": self.arch_string,
            "spec": self.arch.to_dict(), "metrics": self.metrics, "num_classes": self.num_classes,
            "in_channels": self.in_channels, "stem_stride": self.stem_stride, "family": self.family,
            "cost": self.cost, "build_params": self.build_params, "params_note": self.params_note,
            "rank": self.rank, "ranked_by": self.ranked_by,
        }

    @property
    def stem(self) -> str:
        """The file stem :meth:`write` is meant for: ``trial<N>`` for a trial picked by number, else
        ``rank<R>_<ranking>`` (``rank1_pareto``): exports of one study from different rankings never share a
        file name, so one never replaces another's files."""
        return f"trial{self.trial}" if self.rank is None else f"rank{self.rank}_{self.ranked_by}"

    def write(self, out_dir: str | Path, stem: str) -> list[Path]:
        """Write ``<stem>.arch`` (the string), ``<stem>.json`` (spec + metrics) and ``<stem>_build.py``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{stem}.arch", out / f"{stem}.json", out / f"{stem}_build.py"]
        write_text(paths[0], self.arch_string + "\n")
        write_text(paths[1], json.dumps(self.to_dict(), indent=2) + "\n")
        write_text(paths[2], self.builder_code())
        return paths


def compound_family(arch: Arch, phis: list[float], base_resolution: int = 224,
                    num_classes: int = 1000, in_channels: int = 3) -> list[dict[str, Any]]:
    """Compound-scaled members (φ each; Tan & Le 2019, eq. 3) with their resolution, multipliers and analytic
    MACs/params, counted at ``num_classes`` outputs and ``in_channels`` input channels (recorded in each member
    as ``macs_num_classes`` / ``macs_in_channels``).  Export counts the deployed network (the study's
    ``macs_num_classes``, 3 channels), as the study's records and ``nas-harness scale`` do."""
    from nas_harness.flops import count_macs, count_params
    from nas_harness.scaling import compound

    family = []
    for phi in phis:
        s = compound(arch, phi, base_resolution=base_resolution)
        family.append({
            "phi": phi, "arch": str(s.arch), "resolution": s.resolution, "width": round(s.width, 4),
            "depth": round(s.depth, 4),
            "macs": int(count_macs(s.arch, s.resolution, num_classes=num_classes, in_channels=in_channels).total),
            "params": int(count_params(s.arch, num_classes=num_classes, in_channels=in_channels)),
            "macs_num_classes": num_classes, "macs_in_channels": in_channels,
        })
    return family


def export_arch(df: pd.DataFrame, rank: int = 1, trial: int | None = None, by: str = "auto",
                family: list[float] | None = None, num_classes: int | None = None,
                in_channels: int | None = None, base_resolution: int = 224) -> ExportedArch:
    """The ``rank``-th best eligible trial (or trial number ``trial``) of a study frame, ready to use."""
    from nas_harness.arch import parse_arch

    ranked_by = None
    if trial is not None:
        rows = df[df["number"] == trial]
        if rows.empty:
            raise ConfigError(f"trial: no trial {trial} in study '{df.attrs.get('study_name')}'")
        row = rows.iloc[0]
        if not isinstance(row["arch"], str):
            raise ConfigError(f"trial: trial {trial} has no 'arch' user attribute (state {row['state']})")
    else:
        if not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"rank: expected an integer >= 1, got {rank!r}")
        ranked_by = resolve_rank_by(df, by)
        ranked = rank_trials(df, ranked_by)
        if len(ranked) < rank:
            raise ConfigError(
                f"rank: study '{df.attrs.get('study_name')}' has only {len(ranked)} eligible "
                f"(complete, full-budget, feasible) trials; asked for rank {rank}"
            )
        row = ranked.iloc[rank - 1]
    settings = study_data_settings(df)
    nc = num_classes or settings["num_classes"] or 1000
    ch = in_channels or settings["in_channels"] or 3
    arch = parse_arch(row["arch"])
    metrics = {k: float(row[k]) for k in ("val_acc", "val_acc_final", "test_acc", "reward", "macs", "params",
                                          "latency_ms")
               if k in row and not (isinstance(row[k], float) and math.isnan(row[k]))}
    stem_stride = settings["stem_stride"]
    from nas_harness.flops import count_params

    built = int(count_params(arch, num_classes=int(nc), in_channels=int(ch)))
    return ExportedArch(
        study_name=str(df.attrs.get("study_name")), trial=int(row["number"]), name=str(row["name"]),
        arch=arch, metrics=metrics, num_classes=int(nc), in_channels=int(ch),
        stem_stride=int(stem_stride) if stem_stride else None,
        family=compound_family(arch, family, base_resolution, counted_classes(df), 3) if family else [],
        cost=study_cost(df), build_params=built, params_note=params_note(df, built, int(nc), int(ch)),
        rank=None if trial is not None else rank, ranked_by=ranked_by,
    )
