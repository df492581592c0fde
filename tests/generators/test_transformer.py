"""The reversible data transformer (generators.core.transformer): pure, no database.

Round-trip tolerance: categories, events and integers come back exactly; a float column
comes back within 1e-5 of its schema range (the encoding is float32).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from generators.core.transformer import DataTransformer
from tests.generators.conftest import MISSING_COLUMN

MODES = ("mode", "quantile")
FLOAT_TOLERANCE = 1e-5  # × (schema max − min)


@pytest.fixture(scope="module")
def transformers(gbsg2_table, gbsg2_schema) -> dict[str, DataTransformer]:
    return {mode: DataTransformer(continuous=mode).fit(gbsg2_table, gbsg2_schema, seed=0) for mode in MODES}


def blocks(transformer: DataTransformer, matrix: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    out, offset = {}, 0
    for span in transformer.spans:
        out[(span.column, span.role)] = matrix[:, offset:offset + span.dim]
        offset += span.dim
    assert offset == matrix.shape[1] == transformer.output_dim
    return out


def assert_round_trip(back: pd.DataFrame, table: pd.DataFrame, schema: Schema) -> None:
    assert list(back.columns) == list(table.columns)
    assert back.dtypes.equals(table.dtypes)
    for column in schema.kept:
        got, want = back[column.name], table[column.name]
        assert got.isna().equals(want.isna()), column.name
        if column.type in ("continuous", "duration"):
            tolerance = FLOAT_TOLERANCE * (column.max - column.min)
            np.testing.assert_allclose(got.dropna(), want.dropna(), rtol=0, atol=tolerance, err_msg=column.name)
        else:  # categorical, event, integer: exact
            pd.testing.assert_series_equal(got, want, check_names=False)


def test_it_lays_out_mode_specific_normalisation_and_one_hots(transformers, gbsg2_table, gbsg2_schema):
    transformer = transformers["mode"]
    layout = [(s.column, s.kind, s.role) for s in transformer.spans]
    expected = []
    for column in gbsg2_schema.kept:
        if column.is_numeric:
            expected += [(column.name, "value", "numeric"), (column.name, "softmax", "mode")]
        else:
            expected.append((column.name, "softmax", "category"))
    assert layout == expected
    by_role = {(s.column, s.role): s for s in transformer.spans}
    assert by_role[("tgrade", "category")].dim == 3
    assert by_role[("cens", "category")].dim == 2  # events are one-hot over 0, 1
    for column in gbsg2_schema.kept:
        if column.is_numeric:
            assert 1 <= by_role[(column.name, "mode")].dim <= transformer.max_modes

    matrix = transformer.transform(gbsg2_table, seed=0)
    assert matrix.dtype == np.float32 and matrix.shape == (len(gbsg2_table), transformer.output_dim)
    for (name, role), block in blocks(transformer, matrix).items():
        if role == "numeric":
            assert np.all(np.abs(block) <= 0.99)
        else:  # every one-hot block holds exactly one 1 per row
            assert set(np.unique(block)) == {0.0, 1.0} and np.all(block.sum(axis=1) == 1), (name, role)
    codes = blocks(transformer, matrix)[("horTh", "category")].argmax(axis=1)
    assert (np.array(["no", "yes"])[codes] == gbsg2_table["horTh"].astype(str).to_numpy()).all()


def test_it_lays_out_the_quantile_transform_as_one_normal_score_per_number(transformers, gbsg2_table, gbsg2_schema):
    transformer = transformers["quantile"]
    numeric = [c.name for c in gbsg2_schema.kept if c.is_numeric]
    assert [s.column for s in transformer.spans if s.role == "numeric"] == numeric
    assert not [s for s in transformer.spans if s.role == "mode"]
    encoded = blocks(transformer, transformer.transform(gbsg2_table))
    scores = np.hstack([encoded[(name, "numeric")] for name in numeric])
    assert np.isfinite(scores).all() and np.abs(scores).max() < 3.8
    # Normal scores: roughly centred and spread like N(0, 1) on a column without ties.
    time_scores = encoded[("time", "numeric")]
    assert abs(time_scores.mean()) < 0.1 and 0.8 < time_scores.std() < 1.2


@pytest.mark.parametrize("mode", MODES)
def test_it_round_trips_categories_exactly_and_numbers_closely(mode, transformers, gbsg2_table, gbsg2_schema):
    back = transformers[mode].inverse_transform(transformers[mode].transform(gbsg2_table, seed=3))
    assert_round_trip(back, gbsg2_table, gbsg2_schema)


@pytest.mark.parametrize("mode", MODES)
def test_it_round_trips_outliers_far_from_every_mode(mode):
    """A few far values form a mixture component too light to keep; they must still encode exactly."""
    rng = np.random.default_rng(0)
    schema = Schema.from_dict({"columns": [
        {"name": "x", "type": "continuous", "min": -100000, "max": 100000},
        {"name": "k", "type": "integer", "min": 0, "max": 10**6},
    ]})
    x = np.concatenate([rng.normal(0, 1, 2000), [5000.0, -7000.0, 90000.0]])
    k = np.concatenate([rng.poisson(3, 2000), [10**5, 2 * 10**5, 999_999]])
    table = pd.DataFrame({"x": x, "k": pd.array(k, dtype="Int64")})
    transformer = DataTransformer(continuous=mode).fit(table, schema, seed=0)
    back = transformer.inverse_transform(transformer.transform(table, seed=0))
    assert_round_trip(back, table, schema)


@pytest.mark.parametrize("mode", MODES)
def test_it_decodes_any_matrix_to_typed_values_within_the_schema_bounds(mode, transformers, gbsg2_table, gbsg2_schema):
    transformer = transformers[mode]
    rng = np.random.default_rng(1)
    wild = rng.normal(0, 50, size=(500, transformer.output_dim))  # far outside anything transform produces
    decoded = transformer.inverse_transform(wild)
    assert decoded.dtypes.equals(gbsg2_table.dtypes)
    assert not decoded.isna().any().any()
    for column in gbsg2_schema.kept:
        values = decoded[column.name]
        if column.is_numeric:
            assert values.min() >= column.min and values.max() <= column.max, column.name
        if column.type == "integer":
            assert str(values.dtype) == "Int64"
            as_float = values.to_numpy(dtype=float)
            assert (as_float == np.round(as_float)).all()
    # the bounds bite: the wild matrix pushes some decoded values onto them (mode-specific α is unbounded here)
    if mode == "mode":
        assert (decoded["pnodes"] == 60).any() or (decoded["pnodes"] == 0).any()


def test_it_keeps_wrongly_shaped_matrices_out():
    schema = Schema.from_dict({"columns": [{"name": "c", "type": "categorical", "categories": ["a", "b"]}]})
    transformer = DataTransformer().fit(pd.DataFrame({"c": pd.Categorical(["a", "b"])}), schema)
    with pytest.raises(ValueError, match="expected 2 columns"):
        transformer.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="continuous"):
        DataTransformer(continuous="minmax")


@pytest.mark.parametrize("mode", MODES)
def test_it_gives_a_nullable_column_a_missing_indicator_and_keeps_missing_cells_missing(
        mode, nullable_table, nullable_schema):
    transformer = DataTransformer(continuous=mode).fit(nullable_table, nullable_schema, seed=0)
    roles = [(s.column, s.role, s.dim) for s in transformer.spans if s.role == "missing"]
    assert roles == [(MISSING_COLUMN, "missing", 2)]  # only the nullable column has one
    matrix = transformer.transform(nullable_table, seed=0)
    indicator = blocks(transformer, matrix)[(MISSING_COLUMN, "missing")]
    missing = nullable_table[MISSING_COLUMN].isna().to_numpy()
    assert 0.2 < missing.mean() < 0.4
    assert (indicator[:, 1] == missing).all() and (indicator.sum(axis=1) == 1).all()
    assert np.isfinite(matrix).all()  # nothing NaN goes into a network
    back = transformer.inverse_transform(matrix)
    assert_round_trip(back, nullable_table, nullable_schema)  # no imputation: the same cells are missing
    assert str(back[MISSING_COLUMN].dtype) == "Int64"


def test_it_fits_the_mixture_on_a_bounded_subsample_without_leaking_convergence_warnings(monkeypatch, gbsg2_table,
                                                                                          gbsg2_schema):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    seen: list[int] = []
    real_fit = BayesianGaussianMixture.fit

    def recording_fit(self, X, y=None):
        seen.append(len(X))
        warnings.warn("did not converge (test)", ConvergenceWarning)
        return real_fit(self, X, y)

    monkeypatch.setattr(BayesianGaussianMixture, "fit", recording_fit)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transformer = DataTransformer(continuous="mode", max_fit_rows=100, max_modes=4).fit(
            gbsg2_table, gbsg2_schema, seed=0)
    assert warnings.filters == filters_before  # silenced locally, not globally
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    numeric = [c for c in gbsg2_schema.kept if c.is_numeric]
    assert len(seen) == len(numeric) and max(seen) == 100  # 686 rows, 100 fitted
    assert all(1 <= len(transformer._numeric[c.name].means) <= 4 for c in numeric)
    # The subsample bounds the fit, not the encoding: every row still round-trips.
    assert_round_trip(transformer.inverse_transform(transformer.transform(gbsg2_table)), gbsg2_table, gbsg2_schema)


@pytest.mark.parametrize("mode", MODES)
def test_it_is_seeded_and_survives_a_json_config_round_trip(mode, transformers, gbsg2_table, gbsg2_schema):
    first = transformers[mode]  # fitted with seed 0
    again = DataTransformer(continuous=mode).fit(gbsg2_table, gbsg2_schema, seed=0)
    assert first.to_config() == again.to_config()
    np.testing.assert_array_equal(first.transform(gbsg2_table, seed=1), again.transform(gbsg2_table, seed=1))

    config = json.loads(json.dumps(first.to_config(), allow_nan=False))  # plain JSON
    restored = DataTransformer.from_config(config)
    assert restored.spans == first.spans and restored.output_dim == first.output_dim
    matrix = first.transform(gbsg2_table, seed=2)
    np.testing.assert_array_equal(restored.transform(gbsg2_table, seed=2), matrix)
    pd.testing.assert_frame_equal(restored.inverse_transform(matrix), first.inverse_transform(matrix))


def test_it_loads_a_config_written_before_mixture_weights_were_stored(transformers, gbsg2_table):
    config = transformers["mode"].to_config()
    for state in config["numeric"].values():
        state.pop("weights")
    restored = DataTransformer.from_config(config)
    back = restored.inverse_transform(restored.transform(gbsg2_table))
    pd.testing.assert_series_equal(back["tgrade"], gbsg2_table["tgrade"])
