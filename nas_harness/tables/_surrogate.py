"""A gradient-boosted surrogate of a benchmark table: predicts an arch's accuracy anywhere in the table's space.

Model: scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingRegressor` (1,000 trees of at most 15 leaves,
learning rate 0.05, L2 1.0, no early stopping; chosen on the validation split) on :func:`arch_features` (per
stage: kernel, expansion, SE, repeats, channels), as Accel-NASBench's authors fit gradient-boosted trees
(their held-out Kendall tau 0.917).  The split is a seeded random 80/10/10 permutation of the table's unique
archs (``numpy.random.default_rng(seed)``); the test split is only reported, it decides nothing.

The model is **refitted deterministically** (same seed and table -> the same trees, bit for bit: no subsampling,
no early stopping, one OpenMP thread) the first time a process needs it (a few seconds) and kept in memory; it
is never saved, so nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_harness.tables._data import BenchmarkTable, accel_nasbench, arch_features

MODEL = "sklearn.HistGradientBoostingRegressor"
HYPERPARAMETERS: dict[str, Any] = {"max_iter": 1000, "learning_rate": 0.05, "max_leaf_nodes": 15,
                                   "l2_regularization": 1.0, "early_stopping": False}
SPLIT = (0.8, 0.1, 0.1)


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) row indices: a seeded permutation of ``range(n)`` cut 80/10/10."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = int(SPLIT[0] * n), int((SPLIT[0] + SPLIT[1]) * n)
    return perm[:a], perm[a:b], perm[b:]


class _Forest:
    """The fitted trees as flat stacked arrays, walked for all trees at once (one row in ~0.2 ms instead of
    sklearn's ~25 ms per call for 1,000 trees).  Same arithmetic as sklearn's predictor: a row goes left when
    ``x[feature] <= threshold``; the prediction is the baseline plus each tree's leaf value, summed in tree order.
    A leaf points to itself on both sides, so a row that reached its leaf stays there for the remaining steps.
    :func:`fit_surrogate` checks it against ``model.predict`` on every table row and uses sklearn otherwise."""

    def __init__(self, model: Any) -> None:
        trees = [p[0].nodes for p in model._predictors]  # one tree per iteration (regression)
        n = max(len(t) for t in trees)
        shape = (len(trees), n)
        feature = np.zeros(shape, dtype=np.intp)
        threshold = np.zeros(shape)
        left = np.tile(np.arange(n, dtype=np.intp), (len(trees), 1))  # padding and leaves: stay put
        right = left.copy()
        value = np.zeros(shape)
        for i, t in enumerate(trees):
            k = len(t)
            split = ~t["is_leaf"].astype(bool)
            feature[i, :k], threshold[i, :k], value[i, :k] = t["feature_idx"], t["num_threshold"], t["value"]
            left[i, :k][split], right[i, :k][split] = t["left"][split], t["right"][split]
        self.depth = int(max(t["depth"].max() for t in trees))
        self.baseline = float(np.ravel(model._baseline_prediction)[0])
        self.offset = np.arange(len(trees), dtype=np.intp) * n  # flat index of each tree's root
        # flat: node ids become indices into the flattened arrays
        self.feature, self.threshold, self.value = feature.ravel(), threshold.ravel(), value.ravel()
        self.left, self.right = (left + self.offset[:, None]).ravel(), (right + self.offset[:, None]).ravel()

    def predict_one(self, x: np.ndarray) -> float:
        node = self.offset
        for _ in range(self.depth):
            node = np.where(x[self.feature[node]] <= self.threshold[node], self.left[node], self.right[node])
        vals = np.concatenate(([self.baseline], self.value[node]))
        return float(np.add.accumulate(vals)[-1])


@dataclass(frozen=True)
class SurrogateFit:
    """A fitted surrogate: the model, its split and its held-out quality (Kendall tau, RMSE in accuracy)."""

    model: Any
    seed: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    metrics: dict[str, float]
    forest: _Forest | None = None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracies (fractions), shape (n,), for ``features`` of shape (n, d)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self.model.predict(np.asarray(features, dtype=float))

    def predict_arch(self, arch: Any) -> float:
        """The predicted accuracy of one arch (the fast tree walk where it was verified at fit time)."""
        x = np.array(arch_features(arch), dtype=float)
        if self.forest is not None:
            return self.forest.predict_one(x)
        return float(self.predict(x[None, :])[0])

    def summary(self) -> dict[str, Any]:
        """JSON: the model, its settings, the split (seed, sizes, test rows) and the metrics."""
        return {"model": MODEL, "hyperparameters": HYPERPARAMETERS, "seed": self.seed,
                "split": {"fractions": list(SPLIT), "train": len(self.train_idx), "validation": len(self.val_idx),
                          "test": len(self.test_idx), "test_rows": [int(i) for i in self.test_idx]},
                **self.metrics}


def fit_surrogate(table: BenchmarkTable, seed: int = 0) -> SurrogateFit:
    """Fit on the train split; Kendall tau (scipy) and RMSE on the validation and test splits."""
    from scipy.stats import kendalltau
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    X, y = table.features, table.val_acc
    tr, va, te = split(len(y), seed)
    model = HistGradientBoostingRegressor(random_state=seed, **HYPERPARAMETERS)
    with threadpool_limits(1):  # deterministic, and not slowed by OpenMP spinning on a busy machine
        model.fit(X[tr], y[tr])
        metrics: dict[str, float] = {}
        for name, idx in (("validation", va), ("test", te)):
            pred = model.predict(X[idx])
            metrics[f"{name}_kendall_tau"] = float(kendalltau(pred, y[idx]).statistic)
            metrics[f"{name}_rmse"] = float(np.sqrt(np.mean((pred - y[idx]) ** 2)))
        full = model.predict(X)
    forest = _fast_forest(model, X, full)
    return SurrogateFit(model, seed, tr, va, te, metrics, forest)


def _fast_forest(model: Any, X: np.ndarray, expected: np.ndarray) -> _Forest | None:
    """The stacked-array trees when they reproduce sklearn's predictions on every row exactly, else None."""
    try:
        forest = _Forest(model)
    except (AttributeError, KeyError, IndexError, ValueError, TypeError):  # another sklearn layout
        return None
    ok = all(forest.predict_one(x) == e for x, e in zip(X, expected))
    return forest if ok else None


_FITTED: dict[int, SurrogateFit] = {}


def accel_nasbench_surrogate(seed: int = 0) -> SurrogateFit:
    """The surrogate of the packaged Accel-NASBench table for split seed ``seed`` (fitted once per process, or
    handed to a worker process with :func:`adopt_surrogate`)."""
    if seed not in _FITTED:
        _FITTED[seed] = fit_surrogate(accel_nasbench(), seed)
    return _FITTED[seed]


def adopt_surrogate(seed: int, fit: SurrogateFit) -> None:
    """Use ``fit`` (fitted by another process of this run, passed over a pipe) as this process's surrogate for
    split seed ``seed``."""
    _FITTED[seed] = fit
