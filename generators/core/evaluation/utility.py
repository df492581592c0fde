"""Utility metrics of the validation report: train on synthetic, test on real (the pandemic paper's
protocol), against the same model trained on the real training rows.

* ``utility.classification_auc_synthetic`` / ``utility.classification_auc_real``: a gradient-boosted
  classifier for ``ctx.target`` fitted on the synthetic (resp. training) rows, ROC AUC on the holdout;
* ``utility.classification_ratio``: their quotient;
* ``utility.c_index_ratio``: the same quotient for a Cox model's C-index (from the survival section).

Both fits use the same features, hyper-parameters and ``random_state``, so a release that *is* the
training rows scores a ratio of exactly 1. The scores are public; class counts of the real rows
go to ``real_details``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from generators.core.evaluation.encoding import categories, encode, labels
from generators.core.evaluation.report import EvalContext, Metric, sample_note, sampled

__all__ = ["MAX_CLASSES", "SAMPLE_FIT", "TREE_BUDGET", "classification_auc", "metrics"]

#: A target with more classes than this among the fitted rows is not scored (macro AUCs over
#: dozens of rare classes are noise, and each class costs a tree per boosting iteration).
MAX_CLASSES = 50
#: Boosting iterations × trees per iteration (1 for two classes, else one per class), at most 100
#: iterations and at least 4: about 2 s per fit at 10k rows on one core whatever the class count.
TREE_BUDGET = 200
#: Each classifier is fitted on a seeded sample of at most this many of its rows (a fit costs about
#: 3 s per 100k rows on one core); the holdout is scored whole. Boosting at 100k rows is well past
#: where more rows move a holdout AUC.
SAMPLE_FIT = 100_000
#: Separates this section's draws from the other sections' (same report seed).
_STREAM = 4

_AUC_DESCRIPTION = (
    "ROC AUC on the holdout rows of a HistGradientBoostingClassifier (seeded; 100 boosting iterations, fewer "
    "for many classes) fitted on the {rows} rows to predict the target from the other stored columns (the "
    "survival duration left out when the target is the survival event): with two classes in the holdout the "
    "AUC of the later class's predicted probability, with more the mean of the one-versus-rest AUCs of the "
    "classes present (a class the model never saw scores 0.5).")
_DESCRIPTIONS = {
    "classification_auc_synthetic": _AUC_DESCRIPTION.format(rows="synthetic"),
    "classification_auc_real": _AUC_DESCRIPTION.format(rows="real training"),
    "classification_ratio": "classification_auc_synthetic / classification_auc_real: 1 means a model trained on "
                            "the release predicts the holdout as well as one trained on the real rows.",
    "c_index_ratio": "Holdout C-index of a Cox model fitted on the synthetic rows / that of the same model fitted "
                     "on the real training rows: 1 means the release ranks real survival as well as the real rows.",
}
_LABELS = {
    "classification_auc_synthetic": "Classifier AUC, trained on synthetic",
    "classification_auc_real": "Classifier AUC, trained on real",
    "classification_ratio": "Classifier AUC ratio (synthetic / real)",
    "c_index_ratio": "C-index ratio (synthetic / real)",
}
_RANGES = {
    "classification_auc_synthetic": (0.0, 1.0),
    "classification_auc_real": (0.0, 1.0),
    "classification_ratio": (0.0, None),
    "c_index_ratio": (0.0, None),
}


def _metric(name: str, value: float | None, *, reason: str = "", **parts) -> Metric:
    low, high = _RANGES[name]
    key, label, description = f"utility.{name}", _LABELS[name], _DESCRIPTIONS[name]
    if value is None:
        return Metric.not_applicable(key, label, reason, low=low, high=high, better="higher",
                                     description=description)
    return Metric(key=key, label=label, value=value, low=low, high=high, better="higher", description=description,
                  **parts)


def metrics(ctx: EvalContext) -> list[Metric]:
    return [*_classification(ctx), _c_index_ratio(ctx)]


# ---------------------------------------------------------------------------------------- classification
def classification_auc(model: HistGradientBoostingClassifier, x: np.ndarray, y: np.ndarray,
                       order: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """AUC of a fitted model on labelled rows that hold at least two classes. Two classes: the AUC of
    the later one in ``order`` (schema order) by its predicted probability. More: the macro mean of
    the one-versus-rest AUCs over the classes present. A class the model never saw has probability 0
    everywhere, hence AUC 0.5. Returns the AUC and the per-class AUCs."""
    present = [c for c in order if np.any(y == c)]
    proba = model.predict_proba(x)
    seen = {str(c): i for i, c in enumerate(model.classes_)}

    def score(c: str) -> float:
        p = proba[:, seen[c]] if c in seen else np.zeros(len(y))
        return float(roc_auc_score(y == c, p))

    if len(present) == 2:
        auc = score(present[1])
        return auc, {present[1]: auc}
    per_class = {c: score(c) for c in present}
    return float(np.mean(list(per_class.values()))), per_class


def _classification(ctx: EvalContext) -> list[Metric]:
    names = ("classification_auc_synthetic", "classification_auc_real", "classification_ratio")

    def none(reason: str) -> list[Metric]:
        return [_metric(name, None, reason=reason) for name in names]

    target = ctx.target
    if target is None:
        return none("no target column was chosen for the utility classifier")
    if target not in ctx.schema or ctx.schema[target].type not in ("categorical", "event"):
        return none(f"the target {target!r} is not a categorical or event column of the schema")
    column = ctx.schema[target]
    survival = ctx.schema.survival
    drop = {target} | ({survival.duration} if survival is not None and survival.event == target else set())
    features = [c for c in ctx.columns if c.name not in drop]
    if not features:
        return none(f"there is no column left to predict {target!r} from")
    order = categories(column)

    def prepared(frame):
        y = labels(frame[target], column).to_numpy()
        keep = frame[target].notna().to_numpy()
        return encode(frame, ctx.schema, features)[keep], y[keep].astype(str)

    frames = {"synthetic": ctx.synthetic, "training": ctx.train, "holdout": ctx.holdout}
    fitted = {side: sampled(frames[side], SAMPLE_FIT, ctx.seed, _STREAM * 10 + i)
              for i, side in enumerate(("synthetic", "training"))}
    sides = {side: prepared(fitted.get(side, frame)) for side, frame in frames.items()}
    # The class counts of every row (the fits' own are checked below).
    counts = {side: labels(frame[target], column).value_counts().reindex(order, fill_value=0).astype(int).to_dict()
              for side, frame in frames.items()}
    fit_counts = {side: {c: int(np.sum(sides[side][1] == c)) for c in order} for side in fitted}

    def single_class(side: str) -> str:
        """Why ``side`` cannot train or test a classifier ('' when it can)."""
        if sum(1 for n in fit_counts.get(side, counts[side]).values() if n) >= 2:
            return ""
        if not len(frames[side]):
            return f"there are no {side} rows"
        if not len(sides[side][1]):
            return f"the target {target!r} is missing in every {side} row"
        return f"the {side} rows hold a single class of {target!r}"

    x_test, y_test = sides["holdout"]
    holdout_problem = single_class("holdout")
    fitted_classes = sum(1 for c in order if counts["synthetic"][c] or counts["training"][c])
    if fitted_classes > MAX_CLASSES:
        return none(f"the target {target!r} has {fitted_classes} classes among the synthetic and training rows; "
                    f"the classifier takes at most {MAX_CLASSES}")
    # The same iterations for both fits, so that a release equal to the training rows scores exactly 1.
    iterations = int(np.clip(TREE_BUDGET // (1 if fitted_classes <= 2 else fitted_classes), 4, 100))
    design = {"target": target, "features": [c.name for c in features], "boosting_iterations": iterations}
    sample_note(ctx, "utility", [f"utility.{name}" for name in names],
                {side: (len(fitted[side]), len(frames[side])) for side in fitted},
                "The classifiers were fitted on", ", and scored on every holdout row")
    aucs: dict[str, float | None] = {}
    out = []
    for name, side in (("classification_auc_synthetic", "synthetic"), ("classification_auc_real", "training")):
        problem = holdout_problem or single_class(side)
        if problem:
            aucs[name] = None
            out.append(_metric(name, None, reason=problem))
            continue
        x, y = sides[side]
        # One OpenMP thread: on a shared two-core worker, spinning OpenMP threads made a 0.4 s fit take
        # 20 s or more; a single thread costs about a second at 10k rows and does not change the model.
        with threadpool_limits(limits=1, user_api="openmp"):
            model = HistGradientBoostingClassifier(max_iter=iterations, random_state=ctx.seed).fit(x, y)
            auc, per_class = classification_auc(model, x_test, y_test, order)
        aucs[name] = auc
        real = {"holdout_class_counts": counts["holdout"]}
        if side == "synthetic":
            parts = {"synthetic_details": {"class_counts": counts["synthetic"]}, "real_details": real}
        else:
            parts = {"real_details": real | {"training_class_counts": counts["training"]}}
        out.append(_metric(name, auc, details=design | {"per_class_auc": per_class}, **parts))
    synthetic_auc, real_auc = aucs["classification_auc_synthetic"], aucs["classification_auc_real"]
    if synthetic_auc is None or real_auc is None:
        reason = next(m.reason for m in out if not m.applicable)
        out.append(_metric("classification_ratio", None, reason=reason))
    elif real_auc <= 0.0:
        out.append(_metric("classification_ratio", None, reason="the model trained on real rows scored an AUC of 0"))
    else:
        out.append(_metric("classification_ratio", synthetic_auc / real_auc,
                           details={"auc_synthetic": synthetic_auc, "auc_real": real_auc}))
    return out


# ---------------------------------------------------------------------------------------- survival
def _c_index_ratio(ctx: EvalContext) -> Metric:
    try:
        from generators.core.evaluation.survival import cox_c_indices
    except ImportError as error:  # the survival section predates it
        return _metric("c_index_ratio", None, reason=f"the Cox C-index is not available: {error}")
    result = cox_c_indices(ctx)
    if isinstance(result, str):
        return _metric("c_index_ratio", None, reason=result)
    c_real, c_synthetic = (float(v) for v in result)
    if not np.isfinite(c_real) or not np.isfinite(c_synthetic) or c_real <= 0.0:
        return _metric("c_index_ratio", None, reason=f"the C-indices ({c_synthetic:.4g} synthetic, {c_real:.4g} real) "
                                                     "give no ratio")
    return _metric("c_index_ratio", c_synthetic / c_real,
                   details={"c_index_synthetic": c_synthetic, "c_index_real": c_real})
