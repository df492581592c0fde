"""Privacy metrics of the validation report: does the release copy, or sit closer to, the rows the
generator saw (``ctx.train``) than rows it never saw (``ctx.holdout``)?

* ``privacy.ims``: identical match share (hematology paper; gate: 0);
* ``privacy.dcr_ratio``: distance to closest record, training over holdout;
* ``privacy.nndr``: nearest-neighbour distance ratio (hematology paper, band 0.60–0.85);
* ``privacy.leakage_coefficient``: the AML paper's Hamming privacy-leakage coefficient;
* ``privacy.mia_auc``: a distance-based membership-inference attack.

The training rows are ~4× the holdout, and a minimum distance shrinks as the reference set grows,
so the train-versus-holdout comparisons use ``k = ⌊n_train / n_holdout⌋`` disjoint seeded training
subsets the size of the holdout (the AML paper's design); training rows left over by the division
take part only in ``ims`` and ``nndr``. Every distance to a real row is a statistic of the real
rows, so it goes to ``real_details``; ``details`` carries the scores and the design.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from clearinghouse.schema import Column
from generators.core.evaluation.encoding import encode, hamming_codes, labels
from generators.core.evaluation.report import EvalContext, Metric, sample_note, sampled

__all__ = ["MIN_HOLDOUT", "SAMPLE_HOLDOUT", "SAMPLE_SYNTHETIC", "SAMPLE_TRAINING", "hamming_onehot", "metrics",
           "min_hamming", "nearest", "row_ids", "subsets"]

#: Fewer holdout rows than this make the train-versus-holdout comparisons noise.
MIN_HOLDOUT = 5
#: Numbers are cut into this many bins for the Hamming distances (AML paper).
HAMMING_BINS = 10
#: The distance metrics (every one but ``ims``) compare every synthetic row with every real row:
#: quadratic, about 10^12 distances at a million rows. Beyond these sizes they run on a seeded
#: sample of each frame (``meta["samples"]`` says so); ``ims`` is exact on every row. At the
#: largest samples the k = 4 training subsets are still 5,000 rows each, and a median or an AUC
#: over 20,000 synthetic rows has a standard error well under 1 %.
SAMPLE_SYNTHETIC, SAMPLE_TRAINING, SAMPLE_HOLDOUT = 20_000, 20_000, 5_000
#: Separates this section's draws from the other sections' (same report seed).
_STREAM = 3
#: Cells of one chunk of a pairwise matrix (float64: 32 MiB).
_CHUNK_CELLS = 1 << 22

_DESCRIPTIONS = {
    "ims": "Share of synthetic rows identical in every stored column to some training row (missing equals "
           "missing); 0 means no training row was copied.",
    "dcr_ratio": "DCR_train / DCR_holdout on the encoded rows (Euclidean): DCR_train is the mean, over k seeded "
                 "disjoint training subsets the size of the holdout, of the median distance from a synthetic row "
                 "to its closest subset row, DCR_holdout the median distance to the closest holdout row; 1 means "
                 "no closer to the training rows than to unseen rows, below 1 closer (0/0 counts as 1).",
    "nndr": "Median over synthetic rows of d1/d2, the Euclidean distances of the encoded row to its nearest and "
            "second-nearest training rows (0/0 counts as 1); the hematology paper's acceptable band is "
            "0.60–0.85, values near 0 mean synthetic rows hug single patients.",
    "leakage_coefficient": "syn→test / syn→train − 1, where syn→test is the mean over synthetic rows of the minimum "
                           "Hamming distance (numbers in 10 bins) to a holdout row and syn→train the same against "
                           "each of k seeded disjoint training subsets the size of the holdout, averaged; the AML "
                           "paper flags values of 0.05 and above.",
    "mia_auc": "Mean over k seeded disjoint training subsets the size of the holdout of the ROC AUC of a "
               "membership attack that scores each real row by minus its Euclidean distance to the closest "
               "synthetic row (subset rows members, holdout rows not); 0.5 is chance.",
}
_LABELS = {
    "ims": "Identical match share",
    "dcr_ratio": "Distance to closest record (train / holdout)",
    "nndr": "Nearest-neighbour distance ratio",
    "leakage_coefficient": "Hamming privacy-leakage coefficient",
    "mia_auc": "Membership-inference AUC",
}
_RANGES = {
    "ims": (0.0, 1.0, "lower"),
    "dcr_ratio": (0.0, None, "higher"),
    "nndr": (0.0, 1.0, "higher"),
    "leakage_coefficient": (-1.0, None, "lower"),
    "mia_auc": (0.0, 1.0, "lower"),
}


def _metric(name: str, value: float | None, *, reason: str = "", **parts) -> Metric:
    low, high, better = _RANGES[name]
    key, label, description = f"privacy.{name}", _LABELS[name], _DESCRIPTIONS[name]
    if value is None:
        return Metric.not_applicable(key, label, reason, low=low, high=high, better=better, description=description)
    return Metric(key=key, label=label, value=value, low=low, high=high, better=better, description=description,
                  **parts)


# ---------------------------------------------------------------------------------------- building blocks
def row_ids(frames: list[pd.DataFrame], columns: tuple[Column, ...] | list[Column]) -> list[np.ndarray]:
    """One integer per row, equal across ``frames`` exactly when two rows hold the same typed value in
    every column (missing equals missing). Exact, unlike a row hash: no collisions."""
    sizes = [len(frame) for frame in frames]
    if not columns or not sum(sizes):
        return [np.zeros(size, dtype="int64") for size in sizes]
    codes = []
    for column in columns:
        values = pd.concat([frame[column.name] for frame in frames], ignore_index=True)
        if column.is_numeric:
            # Int64 and float64 alike; + 0.0 turns −0.0 into 0.0 so that equal numbers share a code.
            values = pd.to_numeric(values).to_numpy(dtype="float64", na_value=np.nan) + 0.0
        else:
            values = labels(values, column).to_numpy()
        codes.append(pd.factorize(values, use_na_sentinel=True)[0] + 1)  # missing: 0
    # Column by column, (row id so far, this column's code) pairs renumbered densely: exact, and a
    # few hash passes instead of sorting the rows × columns matrix (13 s at two million rows).
    ids = codes[0]
    for code in codes[1:]:
        ids = pd.factorize(ids * (int(code.max()) + 1) + code)[0]
    return np.split(ids.astype("int64", copy=False), np.cumsum(sizes)[:-1])


def subsets(n_train: int, n_holdout: int, seed: int) -> np.ndarray:
    """Training row positions, seeded permutation, cut into ``k = ⌊n_train / n_holdout⌋`` rows of
    ``n_holdout`` each: shape (k, n_holdout). The leftover rows are not in any subset."""
    k = n_train // n_holdout if n_holdout else 0
    order = np.random.default_rng(seed).permutation(n_train)
    return order[: k * n_holdout].reshape(k, n_holdout)


def _chunk_rows(n_reference: int) -> int:
    return max(1, _CHUNK_CELLS // max(n_reference, 1))


def nearest(queries: np.ndarray, reference: np.ndarray, blocks: list[tuple[slice, int]], *,
            reverse: bool = False) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Exact Euclidean distances from each query row to its ``k`` nearest rows within each block
    ``(rows of reference, k)``, ascending: one (n_queries, k) array per block; with ``reverse``,
    also each reference row's distance to its nearest query row (the same matrix read by column).

    One pass of chunked matrix products gives the squared distances in the expanded form
    ‖q‖² + ‖r‖² − 2 q·r; the nearest rows, picked by repeated ``argmin`` (far cheaper than a
    partition), are then measured directly, so the distances carry no cancellation error."""
    queries = np.ascontiguousarray(queries, dtype="float64")
    reference = np.ascontiguousarray(reference, dtype="float64")
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    out = [np.empty((len(queries), k)) for _, k in blocks]
    best = np.full(len(reference), np.inf)
    best_query = np.zeros(len(reference), dtype="int64")
    # Blocks asking for one neighbour read the matrix as it is; the others mask what they pick,
    # so they come last and the very last one masks in place instead of copying.
    todo = sorted(range(len(blocks)), key=lambda i: blocks[i][1] > 1)
    step = _chunk_rows(len(reference))
    for start in range(0, len(queries), step):
        q = queries[start:start + step]
        squared = q @ reference.T
        squared *= -2.0
        squared += ref_sq
        if reverse:
            squared += np.einsum("ij,ij->i", q, q)[:, None]
            # A column-wise argmin is slow on a row-major matrix: take it only where this chunk improves.
            column_min = squared.min(axis=0)
            better = np.flatnonzero(column_min < best)
            best[better] = column_min[better]
            best_query[better] = squared[:, better].argmin(axis=0) + start
        picked = np.arange(len(q))
        for position, i in enumerate(todo):
            rows, k = blocks[i]
            part = squared[:, rows] if k == 1 or position == len(todo) - 1 else squared[:, rows].copy()
            candidates = np.empty((len(q), k), dtype="int64")
            for j in range(k):
                candidates[:, j] = part.argmin(axis=1)
                if j + 1 < k:
                    part[picked, candidates[:, j]] = np.inf
            candidates += rows.start or 0
            exact = np.sqrt(((q[:, None, :] - reference[candidates]) ** 2).sum(axis=2))
            exact.sort(axis=1)
            out[i][start:start + len(q)] = exact
    if not reverse:
        return out, None
    return out, np.sqrt(((reference - queries[best_query]) ** 2).sum(axis=1))


def hamming_onehot(codes: list[np.ndarray]) -> list[np.ndarray]:
    """The Hamming codes of several frames one-hot over the (column, code) pairs that occur in any
    of them (float32), so that ``a @ b.T`` counts the columns on which two rows agree."""
    sizes = [len(c) for c in codes]
    stacked = np.concatenate(codes, axis=0)
    n, p = stacked.shape
    positions = np.empty_like(stacked)
    width = 0
    for j in range(p):
        _, inverse = np.unique(stacked[:, j], return_inverse=True)
        positions[:, j] = inverse.ravel() + width
        width += int(inverse.max()) + 1 if n else 0
    onehot = np.zeros((n, width), dtype="float32")
    onehot[np.arange(n)[:, None], positions] = 1.0
    return np.split(onehot, np.cumsum(sizes)[:-1])


def min_hamming(queries: np.ndarray, reference: np.ndarray, n_columns: int, blocks: list[slice]) -> list[np.ndarray]:
    """Minimum Hamming distance (columns that differ) from each one-hot query row to the rows of
    each block of ``reference``: one int array per block. Distance = columns − matching columns,
    the matches by chunked float32 matrix products (exact: counts stay far below 2²⁴)."""
    out = [np.empty(len(queries), dtype="int64") for _ in blocks]
    step = _chunk_rows(len(reference))
    for start in range(0, len(queries), step):
        matches = queries[start:start + step] @ reference.T
        for rows, result in zip(blocks, out):
            result[start:start + len(matches)] = n_columns - np.rint(matches[:, rows].max(axis=1)).astype("int64")
    return out


def _summary(distances: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(distances)), "p5": float(np.percentile(distances, 5))}


# ---------------------------------------------------------------------------------------- the metrics
def metrics(ctx: EvalContext) -> list[Metric]:
    train, holdout, synthetic = ctx.train, ctx.holdout, ctx.synthetic
    n_train, n_holdout, n_syn = len(train), len(holdout), len(synthetic)
    names = ("ims", "dcr_ratio", "nndr", "leakage_coefficient", "mia_auc")
    if n_syn == 0 or n_train == 0:
        reason = "there are no synthetic rows" if n_syn == 0 else "there are no training rows"
        return [_metric(name, None, reason=reason) for name in names]

    out = {"ims": _ims(ctx)}
    ctx = _sample(ctx)
    train, holdout, synthetic = ctx.train, ctx.holdout, ctx.synthetic
    n_train, n_holdout, n_syn = len(train), len(holdout), len(synthetic)
    holdout_problem = _holdout_problem(n_train, n_holdout)
    groups = subsets(n_train, n_holdout, ctx.seed) if not holdout_problem else np.zeros((0, 0), dtype="int64")
    k = len(groups)
    design = {"subsets": k, "subset_rows": n_holdout, "training_rows_left_out": n_train - k * n_holdout}

    # Training rows reordered so that the subsets are contiguous slices; leftovers at the end.
    order = np.concatenate([groups.ravel(), np.setdiff1d(np.arange(n_train), groups.ravel())])
    subset_slices = [slice(i * n_holdout, (i + 1) * n_holdout) for i in range(k)]
    columns = ctx.columns
    enc_train = encode(train, ctx.schema, columns)[order]
    enc_syn = encode(synthetic, ctx.schema, columns)

    # One pass over synthetic × train gives NNDR (all rows), DCR (each subset) and, read by column,
    # each training row's distance to its closest synthetic row (MIA); one over synthetic × holdout
    # the rest.
    to_train, train_to_synthetic = nearest(enc_syn, enc_train, [(slice(0, n_train), min(2, n_train))]
                                           + [(rows, 1) for rows in subset_slices], reverse=not holdout_problem)
    out["nndr"] = _nndr(to_train[0])

    if holdout_problem:
        for name in ("dcr_ratio", "leakage_coefficient", "mia_auc"):
            out[name] = _metric(name, None, reason=holdout_problem)
    else:
        enc_holdout = encode(holdout, ctx.schema, columns)
        (to_holdout,), holdout_to_synthetic = nearest(enc_syn, enc_holdout, [(slice(0, n_holdout), 1)], reverse=True)
        out["dcr_ratio"] = _dcr(np.stack([d[:, 0] for d in to_train[1:]]), to_holdout[:, 0], design)
        out["mia_auc"] = _mia(train_to_synthetic[: k * n_holdout].reshape(k, n_holdout), holdout_to_synthetic,
                              design)
        out["leakage_coefficient"] = _leakage(ctx, order, subset_slices, design)
    return [out[name] for name in names]


def _sample(ctx: EvalContext) -> EvalContext:
    """The context of the distance metrics: each frame cut to its sample size (module constants)."""
    frames = {"synthetic": (ctx.synthetic, SAMPLE_SYNTHETIC), "training": (ctx.train, SAMPLE_TRAINING),
              "holdout": (ctx.holdout, SAMPLE_HOLDOUT)}
    cut = {who: sampled(frame, limit, ctx.seed, _STREAM * 10 + i)
           for i, (who, (frame, limit)) in enumerate(frames.items())}
    sample_note(ctx, "privacy", [f"privacy.{name}" for name in ("dcr_ratio", "nndr", "leakage_coefficient", "mia_auc")],
                {who: (len(cut[who]), len(frame)) for who, (frame, _) in frames.items()},
                "The distances were computed on")
    if all(cut[who] is frame for who, (frame, _) in frames.items()):
        return ctx
    return replace(ctx, train=cut["training"], holdout=cut["holdout"], synthetic=cut["synthetic"])


def _holdout_problem(n_train: int, n_holdout: int) -> str:
    """Why the train-versus-holdout comparisons cannot be made ('' when they can)."""
    if n_holdout < MIN_HOLDOUT:
        return f"the holdout has {n_holdout} rows; the train-versus-holdout comparison needs at least {MIN_HOLDOUT}"
    if n_train < n_holdout:
        return (f"the training rows ({n_train}) are fewer than the holdout rows ({n_holdout}), so no training "
                "subset the size of the holdout can be drawn")
    return ""


def _ims(ctx: EvalContext) -> Metric:
    syn_ids, train_ids, holdout_ids = row_ids([ctx.synthetic, ctx.train, ctx.holdout], ctx.columns)
    copied = np.isin(syn_ids, train_ids)
    real = {"matches": int(copied.sum()), "training_rows_copied": int(len(np.unique(syn_ids[copied])))}
    if len(holdout_ids):
        holdout_copied = np.isin(syn_ids, holdout_ids)
        real |= {"holdout_matches": int(holdout_copied.sum()), "holdout_share": float(holdout_copied.mean())}
    duplicates = len(syn_ids) - len(np.unique(syn_ids))
    return _metric("ims", float(copied.mean()), real_details=real,
                   synthetic_details={"rows": len(syn_ids), "duplicate_rows": int(duplicates)})


def _nndr(two_nearest: np.ndarray) -> Metric:
    if two_nearest.shape[1] < 2:
        return _metric("nndr", None, reason="the ratio needs at least two training rows")
    d1, d2 = two_nearest[:, 0], two_nearest[:, 1]
    ratios = np.divide(d1, d2, out=np.ones_like(d1), where=d2 > 0)  # d2 = 0 forces d1 = 0: 0/0 counts as 1
    return _metric("nndr", float(np.median(ratios)),
                   details={"share_in_band_0.60_0.85": float(np.mean((ratios >= 0.60) & (ratios <= 0.85)))},
                   real_details={"ratio_p5": float(np.percentile(ratios, 5)),
                                 "ratio_p95": float(np.percentile(ratios, 95)),
                                 "nearest": _summary(d1), "second_nearest": _summary(d2)})


def _dcr(to_subsets: np.ndarray, to_holdout: np.ndarray, design: dict) -> Metric:
    """``to_subsets``: (k, synthetic rows) distances to the closest row of each training subset."""
    medians = np.median(to_subsets, axis=1)
    dcr_train, dcr_holdout = float(medians.mean()), float(np.median(to_holdout))
    real = {"dcr_train_median": dcr_train, "dcr_holdout_median": dcr_holdout,
            "dcr_train_p5": float(np.percentile(to_subsets, 5, axis=1).mean()),
            "dcr_holdout_p5": float(np.percentile(to_holdout, 5)),
            "subset_medians": medians.tolist()}
    if dcr_holdout == 0.0:
        if dcr_train > 0.0:
            return _metric("dcr_ratio", None, reason=(
                "at least half of the synthetic rows copy a holdout row exactly while the training subsets are "
                "not matched as often: the holdout seems to have reached the generator, so the comparison "
                "does not hold"))
        ratio = 1.0  # both zero: at least half the rows coincide with real rows on either side alike
    else:
        ratio = dcr_train / dcr_holdout
    return _metric("dcr_ratio", ratio, details=design | {"subset_ratios": (medians / dcr_holdout).tolist()
                                                          if dcr_holdout else [1.0] * len(medians)},
                   real_details=real)


def _leakage(ctx: EvalContext, order: np.ndarray, subset_slices: list[slice], design: dict) -> Metric:
    columns = ctx.columns
    codes = [hamming_codes(frame, ctx.schema, bins=HAMMING_BINS, columns=columns)
             for frame in (ctx.synthetic, ctx.train.iloc[order], ctx.holdout)]
    syn, train, holdout = hamming_onehot(codes)
    p = len(columns)
    n_train = len(train)
    to_train = min_hamming(syn, train, p, [slice(0, n_train)] + subset_slices)
    to_holdout = min_hamming(syn, holdout, p, [slice(0, len(holdout))])[0]
    per_subset = np.array([d.mean() for d in to_train[1:]])
    syn_train, syn_test = float(per_subset.mean()), float(to_holdout.mean())
    real = {"syn_to_train": syn_train, "syn_to_test": syn_test, "syn_to_train_per_subset": per_subset.tolist(),
            "median_variables_to_match_training_row": float(np.median(to_train[0])),
            "median_variables_to_match_holdout_row": float(np.median(to_holdout))}
    if syn_train == 0.0:
        if syn_test > 0.0:
            return _metric("leakage_coefficient", None, reason=(
                "every synthetic row matches a row of every training subset exactly on the binned values "
                "while not every one matches a holdout row: the coefficient is unbounded (maximal leakage)"))
        coefficient, per = 0.0, [0.0] * len(per_subset)  # both zero: nothing tells the two apart
    else:
        coefficient = syn_test / syn_train - 1.0
        per = [syn_test / d - 1.0 if d > 0 else None for d in per_subset]
    return _metric("leakage_coefficient", coefficient, details=design | {"columns": p, "bins": HAMMING_BINS,
                                                                       "subset_coefficients": per},
                   real_details=real)


def _mia(members: np.ndarray, non_members: np.ndarray, design: dict) -> Metric:
    """``members``: (k, subset rows) distances of training rows to their closest synthetic row."""
    truth = np.r_[np.ones(members.shape[1]), np.zeros(len(non_members))]
    aucs = [float(roc_auc_score(truth, -np.r_[subset, non_members])) for subset in members]
    return _metric("mia_auc", float(np.mean(aucs)), details=design | {"subset_aucs": aucs},
                   real_details={"member_distance": _summary(members.ravel()),
                                 "non_member_distance": _summary(non_members)})
