"""Statistics of scaling curves: where a single-dimension curve stops gaining, and compound vs single scaling at
matched MACs -- every statement read off a paired 95 % interval over seeds, nothing from point estimates.

**Marginal gain per doubling** (EfficientNet Figure 3, "the accuracy gain diminishes"): between consecutive
points i and i+1 of a curve, for each seed s, ``g_s = (acc[i+1][s] - acc[i][s]) / log2(MACs[i+1] / MACs[i])``
(accuracy points per doubling of MACs; the MACs of a network are exact, so the divisor is a constant).  Its
mean and Student-t interval are the paired t analysis of :func:`nas_harness.results.stats.paired_delta`
over the seeds both points completed.  A step **gains** when the interval is above 0, **loses** when below
and is **not resolved from 0** otherwise.  A curve *stops gaining* after the end of its last step that gains
(:func:`stops_gaining`): every step after it has an interval that includes 0 or lies below it.

**Matched MACs** (Figure 8): a compound point with MACs ``M`` is compared with each single-dimension curve
by linear interpolation in log2-MACs between the two consecutive points of the curve that bracket ``M``,
seed by seed: ``acc_s = (1 - t) acc[i][s] + t acc[i+1][s]``, ``t = log(M / M_i) / log(M_{i+1} / M_i)``;
the paired Δ = compound − interpolated (:func:`paired_delta`) then says *beats* / *tied within noise* /
*worse* by :func:`nas_harness.results.stats.verdict` (worded by :func:`~nas_harness.results.stats.paired_words`
when every seed gives the same Δ: a zero-width interval measures no noise).  A compound point outside the curve's
MACs range is not compared (no extrapolation).  The interpolated accuracy is an estimate of what the curve would
reach at ``M``; it assumes accuracy is linear in log-MACs between two measured points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas_harness.results.stats import (
    ACCURACY,
    BEATS,
    CONFIDENCE,
    TIED,
    WORSE,
    PairedDelta,
    Summary,
    paired_delta,
    paired_words,
    summarize,
)

__all__ = ["GAINS", "LOSES", "UNRESOLVED", "CurveData", "Match", "Segment", "marginal_gains", "match_at_macs",
           "point_summaries", "stops_gaining"]

GAINS = "gains"
LOSES = "loses"
UNRESOLVED = "not resolved from 0"


@dataclass(frozen=True)
class CurveData:
    """One curve's measurements: point ``labels``, their ``macs`` (the x axis, increasing along the curve)
    and per point a seed -> accuracy map (accuracies in [0, 1])."""

    name: str
    labels: Sequence[str]
    macs: Sequence[float]
    acc: Sequence[Mapping[int, float]]

    def __post_init__(self) -> None:
        if not len(self.labels) == len(self.macs) == len(self.acc):
            raise ValueError(f"curve {self.name}: labels, macs and acc differ in length")


@dataclass(frozen=True)
class Segment:
    """The step from point ``start`` to ``end`` of ``curve``: ``doublings`` = log2(MACs ratio) and the paired
    ``gain`` per doubling (accuracy units per doubling; ``gain.n`` pairs)."""

    curve: str
    start: str
    end: str
    macs_start: float
    macs_end: float
    doublings: float
    gain: PairedDelta

    @property
    def verdict(self) -> str:
        """:data:`GAINS`, :data:`LOSES` or :data:`UNRESOLVED` (also with fewer than 2 pairs)."""
        v = self.gain.verdict
        return GAINS if v == BEATS else LOSES if v == WORSE else UNRESOLVED

    @property
    def words(self) -> str:
        """:attr:`verdict` as the report prints it: qualified by :func:`~nas_harness.results.stats.paired_words`
        when every seed gave the same gain (a zero-width interval measures no noise)."""
        return paired_words(self.gain, self.verdict) if self.gain.constant else self.verdict


def point_summaries(curve: CurveData, confidence: float = CONFIDENCE) -> list[Summary]:
    """Mean and Student-t interval of each point's accuracy over its seeds (clipped to [0, 1])."""
    return [summarize(list(a.values()), confidence, bounds=ACCURACY) for a in curve.acc]


def marginal_gains(curve: CurveData, confidence: float = CONFIDENCE) -> list[Segment]:
    """One :class:`Segment` per pair of consecutive points whose MACs differ (a step that does not change the
    MACs has no gain per doubling and is left out)."""
    out = []
    for i in range(len(curve.labels) - 1):
        m0, m1 = float(curve.macs[i]), float(curve.macs[i + 1])
        if not (m0 > 0 and m1 > 0) or m1 == m0:
            continue
        dbl = math.log2(m1 / m0)
        a1 = {s: float(v) / dbl for s, v in curve.acc[i + 1].items()}
        a0 = {s: float(v) / dbl for s, v in curve.acc[i].items()}
        out.append(Segment(curve.name, curve.labels[i], curve.labels[i + 1], m0, m1, dbl,
                           paired_delta(a1, a0, confidence)))
    return out


def stops_gaining(curve: CurveData, segments: Sequence[Segment]) -> str:
    """Where the curve stops gaining, in words that claim no more than the intervals (see the module doc)."""
    if not segments:
        return "fewer than two points with different MACs: nothing to say"
    gaining = [i for i, s in enumerate(segments) if s.verdict == GAINS]
    if not gaining:
        losing = [s for s in segments if s.verdict == LOSES]
        tail = (f"; the step(s) {', '.join(f'{s.start} -> {s.end}' for s in losing)} lose accuracy"
                if losing else "")
        return (f"no step's gain is resolved from 0: nothing measurable is gained beyond {segments[0].start} "
                f"at this budget and number of seeds{tail}")
    last = gaining[-1]
    if last == len(segments) - 1:
        losing = [s for s in segments if s.verdict == LOSES]
        tail = (f"; earlier, {', '.join(f'{s.start} -> {s.end}' for s in losing)} lost accuracy (interval below 0)"
                if losing else "")
        return (f"still gaining at {segments[-1].end}: the last step ({segments[-1].start} -> {segments[-1].end}) "
                f"gains with an interval above 0{tail}")
    rest = segments[last + 1:]
    losing = [s for s in rest if s.verdict == LOSES]
    tail = f" ({len(losing)} of them below 0)" if losing else ""
    return (f"stops gaining after {segments[last].end}: the last resolved gain is {segments[last].start} -> "
            f"{segments[last].end}; every later step's interval includes 0 or lies below it{tail}")


@dataclass(frozen=True)
class Match:
    """A compound point against one single-dimension curve at the same MACs: the bracketing points of the
    curve (``between``, None when the MACs are outside the curve), the interpolation weight ``t`` and the
    paired Δ = compound − curve (None when not matched)."""

    compound: str
    curve: str
    macs: float
    between: tuple[str, str] | None
    t: float
    delta: PairedDelta | None
    same_network: bool = False

    @property
    def verdict(self) -> str:
        """'beats', 'tied within noise', 'worse', 'undecided (fewer than 2 paired seeds)', 'outside the curve's
        MACs' or 'same network as <point>' (the compound point is a point of the curve: phi = 0 is the base); a
        difference that is the same on every seed is worded by :func:`~nas_harness.results.stats.paired_words`
        ('identical on all N seeds (difference 0)', or the verdict 'on all N seeds by the same margin (...)')."""
        if self.same_network and self.between is not None:
            return f"same network as {self.between[0]}"
        if self.delta is None:
            return "outside the curve's MACs"
        if self.delta.n < 2:
            return "undecided (fewer than 2 paired seeds)"
        return paired_words(self.delta)


def match_at_macs(label: str, macs: float, acc: Mapping[int, float], curve: CurveData,
                  confidence: float = CONFIDENCE, same_as: str | None = None) -> Match:
    """Compare one compound point (``label``, ``macs``, seed -> accuracy) with ``curve`` at equal MACs by
    interpolation in log-MACs (module docstring); seeds missing at the compound point or either bracketing
    point are left out of the pairing.  ``same_as``: the label of the curve's point that is the very same
    network (then that point is the match, and the verdict says so instead of "tied")."""
    if same_as is not None:
        i = list(curve.labels).index(same_as)
        return Match(label, curve.name, macs, (same_as, same_as), 0.0,
                     paired_delta({s: float(v) for s, v in acc.items()}, dict(curve.acc[i]), confidence), True)
    for i in range(len(curve.labels) - 1):
        m0, m1 = float(curve.macs[i]), float(curve.macs[i + 1])
        lo, hi = min(m0, m1), max(m0, m1)
        if not (lo <= macs <= hi) or lo <= 0:
            continue
        t = 0.0 if m1 == m0 else math.log(macs / m0) / math.log(m1 / m0)
        a0, a1 = curve.acc[i], curve.acc[i + 1]
        interp = {s: (1 - t) * float(a0[s]) + t * float(a1[s]) for s in a0 if s in a1}
        return Match(label, curve.name, macs, (curve.labels[i], curve.labels[i + 1]), t,
                     paired_delta({s: float(v) for s, v in acc.items()}, interp, confidence))
    if len(curve.labels) == 1 and float(curve.macs[0]) == macs:
        return Match(label, curve.name, macs, (curve.labels[0], curve.labels[0]), 0.0,
                     paired_delta({s: float(v) for s, v in acc.items()}, dict(curve.acc[0]), confidence))
    return Match(label, curve.name, macs, None, math.nan, None)


#: Words of a matched comparison, for the report ("compound beats width", ...).
MATCH_WORDS = {BEATS: "beats", TIED: "ties with", WORSE: "loses to"}
