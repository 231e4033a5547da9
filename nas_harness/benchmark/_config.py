"""The benchmark file: which strategies, seeds and trial budget, on which table (validated, one-line errors)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from nas_harness._config import ConfigModel, Int, Name, Rules, Text, bad, inert, read_toml
from nas_harness.tables import PERF_COLUMNS

#: Optuna samplers that model this categorical space, by benchmark name.
STRATEGIES = ("random", "tpe", "tpe_independent", "nsgaii", "nsgaiii", "gp")
#: Samplers that do not fit, and why (a one-line error when named).
UNSUITED = {
    "grid": "a grid over 1.04e11 archs never ends; over a table's records in a fixed order it is biased "
            "(random order without replacement is 'random')",
    "bruteforce": "it enumerates the space in a fixed order (1.04e11 archs)",
    "cmaes": "CMA-ES samples categorical parameters independently at random (it would be 'random' under another name)",
    "qmc": "QMC samples categorical parameters independently at random (it would be 'random' under another name)",
}
COSTS = ("params", "macs", "macs_thop", "latency_ms", *PERF_COLUMNS)
_TABLE_ONLY = set(PERF_COLUMNS)
_DEFAULT_STRATEGIES = ("random", "tpe", "nsgaii", "nsgaiii")


class BenchmarkConfig(ConfigModel):
    """A ``nas-harness benchmark`` file: strategies x seeds x a trial budget on a table, its surrogate or a table
    recorded from one's own finished studies."""

    name: Annotated[Name, Field(description="name of the benchmark; outputs go to <results_dir>/<name>")]
    description: Annotated[Text, Field(max_length=1000, description="free text for the report")] = ""
    source: Annotated[Literal["table", "surrogate", "recorded"], Field(description=(
        "'table': search the table's records only (proposals mapped onto unseen records); 'surrogate': the "
        "whole space, scored by the surrogate; 'recorded': a table made from finished studies (recorded)"))
                      ] = "table"
    table: Annotated[Literal["accel_nasbench"], Field(description="the packaged table (source table/surrogate)")
                     ] = "accel_nasbench"
    recorded: Annotated[list[Text], Field(max_length=100, description=(
        "source = 'recorded': study results folders (each with trials.csv) whose finished trials form the table"))
                        ] = Field(default_factory=list)
    split_seed: Annotated[Int, Field(ge=0, le=2**31 - 1, description="the surrogate's split seed")] = 0
    strategies: Annotated[list[str], Field(min_length=1, max_length=len(STRATEGIES), description=(
        f"Optuna samplers to compare: {', '.join(STRATEGIES)}"))] = Field(
        default_factory=lambda: list(_DEFAULT_STRATEGIES))
    seeds: Annotated[Int, Field(ge=2, le=1000, description="seeds per strategy (0 .. seeds-1)")] = 10
    trials: Annotated[Int, Field(ge=2, le=100_000, description="trials per run (the budget)")] = 500
    budgets: Annotated[list[Int], Field(max_length=20, description=(
        "trial counts at which strategies are compared pairwise (default: 10 %, 20 % and all of trials)"))
                       ] = Field(default_factory=list)
    objective: Annotated[Literal["accuracy", "multi"], Field(description=(
        "'accuracy': maximise accuracy (regret curves); 'multi': accuracy vs cost (hypervolume curves)"))
                         ] = "accuracy"
    cost: Annotated[Literal[COSTS], Field(description=(  # type: ignore[valid-type]
        "objective = 'multi': params, macs (fvcore), macs_thop, latency_ms (recorded tables) or a table "
        "throughput/latency column (source = 'table')"))] = "params"
    workers: Annotated[Int, Field(ge=0, le=256, description=(
        "processes, one (strategy, seed) run each; 0 = the usable cores (a larger number is cut to them, with a "
        "note)"))] = 0
    results_dir: Annotated[Text, Field(min_length=1, max_length=4096, description="folder of the outputs")
                           ] = "results"

    _inert: ClassVar[Rules] = inert(
        table=lambda c: c.source == "recorded",
        split_seed=lambda c: c.source != "surrogate",
        cost=lambda c: c.objective != "multi",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkConfig:
        for s in self.strategies:
            if s in UNSUITED:
                raise bad("strategies", f"{s!r} does not fit this space: {UNSUITED[s]}; allowed: "
                                        f"{', '.join(STRATEGIES)}")
            if s not in STRATEGIES:
                raise bad("strategies", f"{s[:40]!r} is not a strategy; allowed: {', '.join(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise bad("strategies", "duplicate strategies")
        if self.source == "recorded" and not self.recorded:
            raise bad("recorded", "source = 'recorded' needs the study folders to make the table from")
        if self.source != "recorded" and self.recorded:
            raise bad("recorded", "applies to source = 'recorded' only; remove it or set source = 'recorded'")
        for b in self.budgets:
            if not 1 <= b <= self.trials:
                raise bad("budgets", f"{b} is outside 1..trials ({self.trials})")
        if self.objective == "multi":
            if self.cost in _TABLE_ONLY and self.source != "table":
                raise bad("cost", f"{self.cost!r} is measured for the table's archs only; with source = "
                                  f"{self.source!r} use params, macs or macs_thop")
            if self.cost == "latency_ms" and self.source != "recorded":
                raise bad("cost", "'latency_ms' is the latency recorded in one's own studies (source = 'recorded'); "
                                  f"the table's are {', '.join(c for c in PERF_COLUMNS if c.startswith('latency'))}")
            if self.cost == "macs_thop" and self.source == "recorded":
                raise bad("cost", "recorded studies hold fvcore's macs; use 'macs'")
        return self

    @property
    def compare_at(self) -> list[int]:
        """The budgets of the pairwise comparisons (sorted, distinct)."""
        default = [max(1, self.trials // 10), max(1, self.trials // 5), self.trials]
        return sorted(set(self.budgets or default))

    @property
    def out_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    def run_identity(self) -> dict[str, Any]:
        """What determines each (strategy, seed) run (stored with it; a stored run of another identity is refused)."""
        out: dict[str, Any] = {"source": self.source, "trials": self.trials, "objective": self.objective}
        if self.source != "recorded":
            out["table"] = self.table
        else:
            out["recorded"] = sorted(self.recorded)
        if self.source == "surrogate":
            out["split_seed"] = self.split_seed
        if self.objective == "multi":
            out["cost"] = self.cost
        return out

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.run_identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_benchmark(path: str | Path, overrides: dict[str, Any] | None = None) -> BenchmarkConfig:
    """Read and validate a benchmark TOML file (ConfigError: one line naming the key or the file)."""
    d = read_toml(path, "benchmark file")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    budgets = d.get("budgets")
    if "trials" in given and "budgets" not in given and isinstance(budgets, list) and isinstance(given["trials"], int):
        # a shorter run than the file's (--trials): its comparisons at budgets beyond the run cannot be made
        kept = [b for b in budgets if not isinstance(b, int) or b <= given["trials"]]
        d["budgets"] = kept or [given["trials"]]
    d.update(given)
    return BenchmarkConfig.from_dict(d, "")
