"""The validation report's figures, as PNG bytes ready to inline in the HTML page.

Two audiences (see :mod:`generators.core.evaluation.report`):

* ``custodian``: real against synthetic — Kaplan–Meier curves, per-column distributions, Pearson
  correlations (real, synthetic and their difference), PCA in the real rows' space and binary
  co-occurrence log-odds ratios;
* ``public``: the synthetic side only. Every public figure is computed from the synthetic rows and
  the schema alone (its builders are never handed a real row), so it cannot leak a statistic of
  the real data.

matplotlib draws through its object API on an Agg canvas, never through pyplot: no global state,
no display, safe in worker threads. PNGs carry no software/version stamp, so the same rows give
the same bytes.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch

from clearinghouse.schema import Column, Schema
from generators.core.evaluation.encoding import categories, encode, labels
from generators.core.evaluation.report import AUDIENCES, EvalContext

__all__ = ["Figure", "PUBLIC_PREFIX", "render_figures"]

#: Public figure keys start with this; the HTML page shows only these to the public.
PUBLIC_PREFIX = "synthetic_"
REAL, SYNTHETIC = "real", "synthetic"
COLOURS = {REAL: "#4c72b0", SYNTHETIC: "#dd8452"}
DPI = 90
#: Column panels: this many per row, at most this many rows per figure (30 columns: two figures).
PER_ROW, ROWS_PER_FIGURE = 4, 4
PANEL_SIZE = (3.0, 2.5)  # inches
#: Numeric columns get this many equal-width bins (integers: whole-number widths; unit bins up to that span).
BINS, UNIT_BINS_UP_TO = 30, 40
#: A categorical panel shows at most this many categories (the most frequent ones).
MAX_BARS = 15
#: Points per frame in a PCA scatter.
PCA_POINTS = 2000
#: The PCA figure's axes are fitted on at most this many rows of the reference frame, drawn with the
#: report seed (two components of ~60 encoded columns: a seeded 100k rows pin them down).
PCA_FIT_ROWS = 100_000
#: Heatmap cells carry their value as text up to this many columns.
ANNOTATE_UP_TO = 12
LABEL_CHARS = 22


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    caption: str
    png: bytes


def render_figures(ctx: EvalContext, audience: str, *, km_group: str | None = None) -> list[Figure]:
    """The figures ``audience`` may see. Figures that do not apply (no survival pair, fewer than
    two usable columns for a heatmap, …) are left out, not drawn empty. ``km_group`` names the column
    whose categories split the KM curves (a conditional release's column); by default the first
    categorical column of the schema (:func:`km_group_column`)."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    if audience == "public":
        # Only the synthetic rows go in: nothing below can read a real row for a public figure.
        frames = {SYNTHETIC: ctx.synthetic}
        prefix = PUBLIC_PREFIX
    else:
        frames = {REAL: ctx.real, SYNTHETIC: ctx.synthetic}
        prefix = ""
    schema = ctx.schema
    return [
        *_km_figures(frames, schema, prefix, km_group),
        *_column_figures(frames, schema, prefix),
        *_correlation_figures(frames, schema, prefix),
        *_pca_figures(frames, schema, prefix, seed=ctx.seed),
        *_cooccurrence_figures(frames, schema, prefix),
    ]


# ---------------------------------------------------------------------------------------- helpers
def _png(fig: MplFigure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _who(frames: dict[str, pd.DataFrame]) -> str:
    return "real and synthetic rows" if REAL in frames else "synthetic rows"


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _is_binary(column: Column) -> bool:
    return column.type == "event" or (column.type == "categorical" and len(column.categories) == 2)


def _as_number(series: pd.Series, column: Column) -> np.ndarray:
    """A numeric column as floats; a binary one as 1 for its second category (event: 1), else 0."""
    if column.is_numeric:
        return _numbers(series)
    positive = categories(column)[1]
    text = labels(series, column)
    return np.where(text.isna().to_numpy(), np.nan, (text == positive).to_numpy(dtype="float64"))


def _legend(fig: MplFigure, frames: dict[str, pd.DataFrame]) -> None:
    handles = [Patch(color=COLOURS[name], alpha=0.6, label=name) for name in frames]
    fig.legend(handles=handles, loc="upper right", ncols=len(handles), frameon=False)


def _skipped(items: list[tuple[str, str]]) -> str:
    if not items:
        return ""
    return " Left out: " + "; ".join(f"{name} ({why})" for name, why in items) + "."


def _usable(columns: list[Column], frames: dict[str, pd.DataFrame], arrays: dict[str, dict[str, np.ndarray]],
            *, need_spread: bool) -> tuple[list[Column], list[tuple[str, str]]]:
    """Columns with values (and, for correlations, more than one value) in every frame drawn."""
    keep, skipped = [], []
    for column in columns:
        why = ""
        for name in frames:
            values = arrays[name][column.name]
            present = values[~np.isnan(values)]
            if present.size == 0:
                why = f"no values in the {name} rows"
            elif need_spread and present.min() == present.max():
                why = f"a single value in the {name} rows"
            if why:
                break
        if why:
            skipped.append((column.name, why))
        else:
            keep.append(column)
    return keep, skipped


def _fixed(width: float, height: float, *, left: float, bottom: float, right: float = 0.2,
           top: float = 0.35) -> MplFigure:
    """A figure with margins in inches: constrained layout measures every label and costs seconds."""
    fig = MplFigure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height)
    return fig


#: (title, matrix, colour limit, colour map) per heatmap panel.
Panel = tuple[str, np.ndarray, float, str]


def _heatmaps(panels: list[Panel], names: list[str]) -> MplFigure:
    """Square heatmaps side by side, each with its colour bar, laid out in inches."""
    k = len(names)
    size = float(np.clip(200 / max(k, 1), 5.5, 9.0))
    short = [_short(n, 16) for n in names]
    labels_in = max(len(n) for n in short) * size * 0.62 / 72 + 0.15
    side = float(np.clip(0.18 * k + 1.2, 2.6, 5.5))
    gap, bar, bar_labels, title = 0.15, 0.14, 0.5, 0.35
    per_panel = labels_in + side + gap + bar + bar_labels
    width, height = per_panel * len(panels) + 0.1, labels_in + side + title
    fig = MplFigure(figsize=(width, height))
    for index, (name, matrix, vmax, cmap) in enumerate(panels):
        left = index * per_panel + labels_in
        ax = fig.add_axes((left / width, labels_in / height, side / width, side / height))
        cax = fig.add_axes(((left + side + gap) / width, labels_in / height, bar / width, side / height))
        colours = colormaps[cmap].with_extremes(bad="#e0e0e0")
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=-vmax, vmax=vmax,
                          interpolation="nearest", aspect="auto")
        ax.set_xticks(range(k), labels=short, rotation=90, fontsize=size, parse_math=False)
        ax.set_yticks(range(k), labels=short, fontsize=size, parse_math=False)
        ax.set_title(name, fontsize=10)
        if k <= ANNOTATE_UP_TO:
            for i, j in zip(*np.nonzero(np.isfinite(matrix))):
                value = matrix[i, j]
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(value) > 0.6 * vmax else "black")
        fig.colorbar(image, cax=cax)
        cax.tick_params(labelsize=7)
    return fig


# --------------------------------------------------------------------------------- Kaplan–Meier
#: KM curves are drawn per group of the first categorical column with at most this many categories.
MAX_KM_GROUPS = 4
GROUP_STYLES = ("-", "--", ":", "-.")
KM_AXES = (7.0, 3.2)  # inches: the plot itself; the numbers at risk go under it
AT_RISK_ROW = 0.2  # inches per row of the numbers-at-risk table
_UNIT = re.compile(r"\b(seconds|minutes|hours|days|weeks|months|years)\b", re.IGNORECASE)


def column_label(column: Column) -> str:
    """What a column is called on an axis: its description from the schema, else its name."""
    return (column.description or column.name).strip()


def time_unit(column: Column) -> str:
    """The duration's unit if the schema names one (``… (days)``), else "time units"."""
    found = _UNIT.search(column.description or "")
    return found.group(1).lower() if found else "time units"


def km_group_column(schema: Schema, preferred: str | None = None) -> Column | None:
    """The main groups of the KM figure: ``preferred`` (the column a release was conditioned on) when it
    is such a column, else the first categorical column of the schema with 2 to ``MAX_KM_GROUPS``
    categories (not the survival pair), or none."""
    pair = {schema.survival.duration, schema.survival.event} if schema.survival else set()
    candidates = [c for c in schema.kept if c.type == "categorical" and c.name not in pair
                  and 2 <= len(c.categories) <= MAX_KM_GROUPS]
    return next((c for c in candidates if c.name == preferred), candidates[0] if candidates else None)


def _km_figures(frames: dict[str, pd.DataFrame], schema: Schema, prefix: str,
                preferred: str | None = None) -> list[Figure]:
    if schema.survival is None:
        return []
    from lifelines import KaplanMeierFitter

    duration, event = schema.survival.duration, schema.survival.event
    duration_column = schema_column(schema, duration)
    group = km_group_column(schema, preferred)
    unit = time_unit(duration_column)
    curves = []  # (frame, group label or None, times, survival, band, all times)
    for name, frame in frames.items():
        times, events = _numbers(frame[duration]), _numbers(frame[event])
        ok = ~(np.isnan(times) | np.isnan(events))
        if ok.sum() < 2:
            return []
        if group is None:
            subsets = [(None, ok)]
        else:
            text = labels(frame[group.name], group).to_numpy(dtype=object)
            subsets = [(value, ok & (text == value)) for value in categories(group)]
        for value, rows in subsets:
            if rows.sum() < 2:
                continue
            fitter = KaplanMeierFitter(alpha=0.05).fit(times[rows], events[rows] > 0)
            curves.append((name, value, fitter.survival_function_.index.to_numpy(dtype="float64"),
                           fitter.survival_function_.iloc[:, 0].to_numpy(), fitter.confidence_interval_.to_numpy(),
                           times[rows]))
    width, axes_h = KM_AXES
    left, right, top, label_room, header = 1.6, 0.3, 0.35, 0.6, 0.3
    height = top + axes_h + label_room + header + AT_RISK_ROW * len(curves) + 0.1
    fig = MplFigure(figsize=(width, height))
    ax = fig.add_axes(((left) / width, (height - top - axes_h) / height, (width - left - right) / width, axes_h / height))
    styles = {value: GROUP_STYLES[i % len(GROUP_STYLES)] for i, value in enumerate(dict.fromkeys(c[1] for c in curves))}
    for name, value, t, s, band, _ in curves:
        label = name if value is None else f"{name}, {value}"
        ax.step(t, s, where="post", color=COLOURS[name], linestyle=styles[value], linewidth=1.6, label=label)
        if group is None:
            ax.fill_between(t, band[:, 0], band[:, 1], step="post", color=COLOURS[name], alpha=0.2, linewidth=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=min(0.0, *(c[2][0] for c in curves)), right=max(np.nanmax(c[5]) for c in curves))
    xlabel = column_label(duration_column)
    if unit == "time units":
        xlabel += " (time units)"
    ax.set_xlabel("\n".join(textwrap.wrap(xlabel, 80)), parse_math=False)
    ax.set_ylabel("share without the event\n(survival probability)")
    ax.grid(alpha=0.3)
    legend_title = None if group is None else column_label(group)
    ax.legend(frameon=False, fontsize=8, title=legend_title, title_fontsize=8)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    # Numbers at risk: one row per curve, one column per tick, in the axes' x coordinates.
    transform = ax.get_xaxis_transform()
    ax.text(0.1 / width, (height - top - axes_h - label_room - header * 0.6) / height,
            f"Number at risk (time in {unit})", transform=fig.transFigure, ha="left", va="center", fontsize=8,
            fontweight="bold")
    for row, (name, value, _, _, _, all_times) in enumerate(curves):
        y_row = -(label_room + header + AT_RISK_ROW * (row + 0.5)) / axes_h
        label = name if value is None else f"{name}, {value}"
        ax.text(0.1 / width, (height - top - axes_h - label_room - header - AT_RISK_ROW * (row + 0.5)) / height,
                _short(label, 24), transform=fig.transFigure, ha="left", va="center", fontsize=7.5,
                color=COLOURS[name], parse_math=False)
        for tick in ticks:
            ax.text(tick, y_row, str(int((all_times >= tick).sum())), transform=transform, ha="center",
                    va="center", fontsize=7.5)
    who = "the real and synthetic rows" if REAL in frames else "the synthetic rows"
    by = "" if group is None else f" by {_named(group)}"
    title = "Kaplan–Meier: " + " vs ".join(frames)
    caption = (f"Kaplan–Meier estimate of {_named(duration_column)}, in {unit}, with event "
               f"{_named(schema_column(schema, event))}, for {who}{by}; "
               + ("shaded: 95% pointwise confidence band (Greenwood, log(−log) scale). " if group is None else "")
               + "Under the plot: the number of rows still at risk at each marked time.")
    return [Figure(f"{prefix}km", title, caption, _png(fig))]


def _named(column: Column) -> str:
    """The column's label, with its name in brackets where they differ."""
    label = column_label(column)
    return label if label == column.name else f"{label} ({column.name})"


def schema_column(schema: Schema, name: str) -> Column:
    return next(c for c in schema.columns if c.name == name)


# ------------------------------------------------------------------------------ column panels
def _edges(column: Column, present: list[np.ndarray]) -> np.ndarray:
    """Bins common to every frame drawn: the public bounds, narrowed to the range the drawn rows
    occupy (so a wide declared range does not squeeze the data into one bar)."""
    bottom, top = float(column.min), float(column.max)
    seen = np.concatenate(present)
    lo, hi = max(bottom, float(seen.min())), min(top, float(seen.max()))
    if hi < lo:  # every value outside the bounds (clipped into the edge bins below)
        lo, hi = bottom, top
    if column.type == "integer":  # whole-number bins, so that no bin holds one more value than its neighbour
        lo, hi = math.floor(lo) - 0.5, math.ceil(hi) + 0.5
        width = 1.0 if hi - lo <= UNIT_BINS_UP_TO + 1 else float(math.ceil((hi - lo) / BINS))
        return np.append(np.arange(lo, hi - 1e-9, width), hi)  # the last bin may be narrower
    if hi == lo:  # a single value: one bar around it
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, BINS + 1)


def _numeric_panel(ax, column: Column, frames: dict[str, pd.DataFrame]) -> bool:
    values = {name: _numbers(frame[column.name]) for name, frame in frames.items()}
    present = {name: v[~np.isnan(v)] for name, v in values.items()}
    if not any(p.size for p in present.values()):
        return False
    edges = _edges(column, [p for p in present.values() if p.size])
    widths = np.diff(edges)
    for index, (name, p) in enumerate(present.items()):
        if not p.size:
            continue
        counts, _ = np.histogram(np.clip(p, edges[0], edges[-1]), bins=edges)
        density = counts / (p.size * widths)  # per unit, so a narrower last bin is not a dip
        if index == 0:
            ax.stairs(density, edges, fill=True, color=COLOURS[name], alpha=0.45 if len(present) > 1 else 0.75)
        else:
            ax.stairs(density, edges, color=COLOURS[name], linewidth=1.4)
    missing = {name: float(np.isnan(v).mean()) for name, v in values.items() if len(v)}
    if column.nullable and any(missing.values()):
        ax.set_xlabel("missing: " + ", ".join(f"{name} {share:.0%}" for name, share in missing.items()), fontsize=7)
    ax.set_ylabel("density", fontsize=7)
    return True


def _category_panel(ax, column: Column, frames: dict[str, pd.DataFrame]) -> bool:
    cats = list(categories(column))
    shares = {}
    for name, frame in frames.items():
        if not len(frame):
            continue
        text = labels(frame[column.name], column)
        codes = pd.Categorical(text, categories=cats).codes  # -1: missing (or outside the schema)
        counts = np.bincount(codes + 1, minlength=len(cats) + 1)
        if counts[1:].sum() == 0:
            continue
        shares[name] = counts / len(frame)  # [missing, *categories], shares of all rows
    if not shares:
        return False
    shown = list(range(1, len(cats) + 1))
    names = list(cats)
    if column.nullable:
        shown, names = [0, *shown], ["(missing)", *names]
    total = sum(shares.values())
    note = ""
    if len(shown) > MAX_BARS:
        order = sorted(range(len(shown)), key=lambda i: -total[shown[i]])[:MAX_BARS]
        order.sort()
        note = f"{MAX_BARS} most frequent of {len(shown)}"
        shown, names = [shown[i] for i in order], [names[i] for i in order]
    x = np.arange(len(shown))
    width = 0.8 / len(shares)
    for index, (name, share) in enumerate(shares.items()):
        offset = (index - (len(shares) - 1) / 2) * width
        ax.bar(x + offset, share[shown], width=width, color=COLOURS[name], alpha=0.75)
    long = len(shown) > 4 or any(len(n) > 6 for n in names)
    ax.set_xticks(x, labels=[_short(n, 12) for n in names], rotation=60 if long else 0,
                  ha="right" if long else "center", fontsize=7, parse_math=False)
    ax.set_ylabel("share", fontsize=7)
    if note:
        ax.set_xlabel(note, fontsize=7)
    return True


def _column_figures(frames: dict[str, pd.DataFrame], schema: Schema, prefix: str) -> list[Figure]:
    drawable: list[Column] = []
    skipped: list[tuple[str, str]] = []
    for column in schema.kept:
        if all(frame[column.name].isna().all() for frame in frames.values()):
            skipped.append((column.name, "no values"))
        else:
            drawable.append(column)
    per_figure = PER_ROW * ROWS_PER_FIGURE
    chunks = [drawable[i:i + per_figure] for i in range(0, len(drawable), per_figure)]
    out = []
    for number, chunk in enumerate(chunks, start=1):
        rows = -(-len(chunk) // PER_ROW)
        cols = min(PER_ROW, len(chunk))
        width, height = PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + 0.4
        fig = _fixed(width, height, left=0.8, bottom=0.75, right=0.3, top=0.55)
        fig.subplots_adjust(wspace=0.38, hspace=0.7)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, column in zip(axes, chunk):
            drawn = (_numeric_panel if column.is_numeric else _category_panel)(ax, column, frames)
            title = _named(column)  # the schema's description with the column's name, wrapped, never cut
            ax.set_title("\n".join(textwrap.wrap(title, 36)) or column.name, fontsize=9 if len(title) <= 36 else 7.5,
                         parse_math=False)
            ax.tick_params(labelsize=7)
            if not drawn:
                ax.set_axis_off()
        for ax in axes[len(chunk):]:
            ax.set_axis_off()
        _legend(fig, frames)
        part = f" ({number} of {len(chunks)})" if len(chunks) > 1 else ""
        caption = ("Distribution of each column in the " + _who(frames) + ": numbers as a histogram (density) "
                   "(bins over the schema's bounds, narrowed to the range the rows drawn occupy), "
                   "categories and events as shares of all rows." + (_skipped(skipped) if number == 1 else ""))
        out.append(Figure(f"{prefix}histograms_{number}", f"Column distributions{part}", caption, _png(fig)))
    return out


# ------------------------------------------------------------------------------- correlations
def _arrays(frames: dict[str, pd.DataFrame], columns: list[Column]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {c.name: _as_number(frame[c.name], c) for c in columns} for name, frame in frames.items()}


def _pearson(arrays: dict[str, np.ndarray], columns: list[Column]) -> np.ndarray:
    """Pairwise-complete Pearson correlations (pandas), NaN where a pair has no spread."""
    table = pd.DataFrame({c.name: arrays[c.name] for c in columns})
    return table.corr(method="pearson", min_periods=3).to_numpy()


def _correlation_figures(frames: dict[str, pd.DataFrame], schema: Schema, prefix: str) -> list[Figure]:
    candidates = [c for c in schema.kept if c.is_numeric or _is_binary(c)]
    arrays = _arrays(frames, candidates)
    columns, skipped = _usable(candidates, frames, arrays, need_spread=True)
    if len(columns) < 2:
        return []
    matrices = {name: _pearson(arrays[name], columns) for name in frames}
    panels: list[Panel] = []
    for name, matrix in matrices.items():
        matrix = matrix.copy()
        np.fill_diagonal(matrix, np.nan)  # 1 by definition; left blank so the colours show the pairs
        panels.append((name, matrix, 1.0, "RdBu_r"))
    if REAL in matrices:
        difference = matrices[SYNTHETIC] - matrices[REAL]
        np.fill_diagonal(difference, np.nan)
        spread = float(np.nanmax(np.abs(difference))) if np.isfinite(difference).any() else 0.0
        panels.append(("synthetic − real", difference, max(0.1, math.ceil(spread * 10) / 10), "PuOr_r"))
    fig = _heatmaps(panels, [c.name for c in columns])
    caption = ("Pearson correlation between numeric columns and binary columns (as 0/1, 1 = the second "
               f"category or event = 1), pairwise-complete rows, in the {_who(frames)}"
               + ("; right: synthetic minus real." if REAL in frames else ".") + _skipped(skipped))
    title = "Correlations" + (": real, synthetic and difference" if REAL in frames else "")
    return [Figure(f"{prefix}correlation", title, caption, _png(fig))]


# --------------------------------------------------------------------------------------- PCA
def _pca_figures(frames: dict[str, pd.DataFrame], schema: Schema, prefix: str, *, seed: int) -> list[Figure]:
    from sklearn.decomposition import PCA

    reference = REAL if REAL in frames else SYNTHETIC
    fit_frame = frames[reference]
    fit_sampled = len(fit_frame) > PCA_FIT_ROWS
    if fit_sampled:
        rows = np.random.default_rng([seed, 2]).choice(len(fit_frame), size=PCA_FIT_ROWS, replace=False)
        fit_frame = fit_frame.iloc[np.sort(rows)]  # streams 0 and 1 draw the scattered points
    fit_on = encode(fit_frame, schema)
    if fit_on.shape[1] < 2 or len(fit_on) < 3 or not np.any(fit_on.var(axis=0) > 0):
        return []
    pca = PCA(n_components=2, svd_solver="covariance_eigh").fit(fit_on)  # rows ≫ features: exact and fast
    ratio = pca.explained_variance_ratio_
    if not np.all(np.isfinite(ratio)):
        return []
    fig = _fixed(6.2, 5.0, left=0.7, bottom=0.55)
    ax = fig.add_subplot()
    for index, (name, frame) in enumerate(frames.items()):
        rng = np.random.default_rng([seed, index])
        rows = rng.choice(len(frame), size=PCA_POINTS, replace=False) if len(frame) > PCA_POINTS else None
        drawn = frame.iloc[np.sort(rows)] if rows is not None else frame
        points = pca.transform(encode(drawn, schema)) if len(drawn) else np.zeros((0, 2))
        ax.scatter(points[:, 0], points[:, 1], s=5, alpha=0.35, color=COLOURS[name], linewidths=0,
                   label=f"{name} ({len(drawn)} rows)")
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, markerscale=3)
    fitted = (f" (fitted on {PCA_FIT_ROWS:,} of its {len(frames[reference]):,} rows, drawn with seed {seed})"
              if fit_sampled else "")
    caption = (f"The {_who(frames)} projected on the first two principal components of the {reference} rows"
               f"{fitted} (numbers scaled by the schema's bounds, categories one-hot); at most "
               f"{PCA_POINTS} rows of each, drawn with seed {seed}.")
    title = "PCA" + (" in the real rows' space" if reference == REAL else " of the synthetic rows")
    return [Figure(f"{prefix}pca", title, caption, _png(fig))]


# ------------------------------------------------------------------------------ co-occurrence
def _log_odds_ratios(arrays: dict[str, np.ndarray], columns: list[Column]) -> np.ndarray:
    """log((n11 + ½)(n00 + ½) / ((n10 + ½)(n01 + ½))) per pair over the rows where both are
    present (Haldane correction); the diagonal is NaN."""
    values = np.column_stack([arrays[c.name] for c in columns])
    present = ~np.isnan(values)
    yes = (present & (values == 1)).astype("float64")
    no = (present & (values == 0)).astype("float64")
    n11, n00, n10, n01 = yes.T @ yes, no.T @ no, yes.T @ no, no.T @ yes
    out = np.log((n11 + 0.5) * (n00 + 0.5) / ((n10 + 0.5) * (n01 + 0.5)))
    np.fill_diagonal(out, np.nan)
    return out


def _cooccurrence_figures(frames: dict[str, pd.DataFrame], schema: Schema, prefix: str) -> list[Figure]:
    candidates = [c for c in schema.kept if _is_binary(c)]
    arrays = _arrays(frames, candidates)
    columns, skipped = _usable(candidates, frames, arrays, need_spread=False)
    if len(columns) < 2:
        return []
    matrices = {name: _log_odds_ratios(arrays[name], columns) for name in frames}
    spread = max((float(np.nanmax(np.abs(m))) for m in matrices.values()), default=1.0)
    vmax = float(np.clip(np.ceil(spread), 1.0, 5.0))
    names = [f"{c.name}={categories(c)[1]}" for c in columns]
    fig = _heatmaps([(name, matrix, vmax, "RdBu_r") for name, matrix in matrices.items()], names)
    caption = ("Co-occurrence of binary columns (two-category columns and events, positive = the second "
               "category or event = 1): log odds ratio of each pair over the rows where both are present, "
               f"with 0.5 added to each cell (Haldane), in the {_who(frames)}; colours clipped at ±{vmax:g}."
               + _skipped(skipped))
    title = "Binary co-occurrence (log odds ratio)" + (": real and synthetic" if REAL in frames else "")
    return [Figure(f"{prefix}cooccurrence", title, caption, _png(fig))]
