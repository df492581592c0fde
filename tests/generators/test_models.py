"""The generators behind one interface (generators.core.models): pure, no database.

Each model is fitted small and briefly (see conftest.SMALL and EPOCHS). Tolerances:
the synthetic missing rate is within ±0.08 of the real one for copula and flow on 2000
rows; ctgan, after 5 epochs, only within ±0.2 (a GAN needs more training than a test can afford).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from generators.core.models import (
    MODELS, ConditionError, Generator, TrainingDiverged, load_model, make_model,
)
from generators.core.models.base import CONFIG_FILE, WEIGHTS_FILE
from tests.generators.conftest import EPOCHS, MISSING_COLUMN, MODEL_NAMES, SMALL, fit_small

ROOT = Path(__file__).resolve().parents[2]
def per_epoch(name: str):
    return name  # every model reports progress once per epoch


def assert_valid_sample(sample: pd.DataFrame, table: pd.DataFrame, schema, n: int) -> None:
    assert len(sample) == n and isinstance(sample.index, pd.RangeIndex) and sample.index.start == 0
    assert list(sample.columns) == list(table.columns)
    assert sample.dtypes.equals(table.dtypes), (sample.dtypes, table.dtypes)
    for column in schema.kept:
        values = sample[column.name].dropna()
        if column.is_numeric:
            assert values.min() >= column.min and values.max() <= column.max, column.name
        if column.type == "integer":
            as_float = values.to_numpy(dtype=float)
            assert (as_float == np.round(as_float)).all(), column.name
        if column.type == "event":
            assert set(values.unique()) <= {0, 1}
        if not column.nullable:
            assert not sample[column.name].isna().any(), column.name


# ---------------------------------------------------------------------------------------- registry
def test_it_registers_the_three_models_behind_one_interface():
    assert set(MODELS) == {"copula", "ctgan", "flow"}
    for name, cls in MODELS.items():
        assert issubclass(cls, Generator) and cls.name == name
        assert isinstance(make_model(name), cls)


def test_it_refuses_an_unknown_model_and_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown model 'gan'.*copula, ctgan, flow"):
        make_model("gan")


def test_the_core_imports_without_django():
    code = ("import generators.core.models, sys; "
            "assert not any(m.startswith(('django', 'rest_framework', 'celery')) for m in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_it_refuses_an_unknown_hyperparameter_by_name(name):
    with pytest.raises(ValueError, match="wingspan"):
        make_model(name, wingspan=3)


@pytest.mark.parametrize("name, values", [
    ("copula", {"n_quantiles": 0}), ("copula", {"shrinkage": -0.1}), ("copula", {"n_quantiles": 2.5}),
    ("copula", {"n_quantiles": "256"}), ("copula", {"n_quantiles": True}), ("copula", {"shrinkage": math.nan}),
    ("ctgan", {"batch_size": -10}), ("ctgan", {"learning_rate": 0}), ("ctgan", {"learning_rate": "fast"}),
    ("ctgan", {"batch_size": 105}),  # not a multiple of pac
    ("ctgan", {"continuous": "minmax"}), ("ctgan", {"continuous": 1}),
    ("flow", {"transforms": 0}), ("flow", {"bins": -3}), ("flow", {"hidden_width": 12.0}),
    ("flow", {"learning_rate": math.inf}), ("flow", {"condition_on": 3}),
])
def test_it_refuses_non_positive_or_wrongly_typed_hyperparameters(name, values):
    (key, _), = values.items()
    with pytest.raises(ValueError, match=key):
        make_model(name, **values)


def test_it_accepts_an_integer_where_a_float_is_expected():
    assert make_model("flow", learning_rate=1).hyper.learning_rate == 1.0


def test_a_flow_can_only_be_conditioned_on_a_categorical_column(gbsg2_table, gbsg2_schema):
    with pytest.raises(ValueError, match="condition_on"):
        fit_small("flow", gbsg2_table, gbsg2_schema, epochs=1, condition_on="age")


# ---------------------------------------------------------------------------------------- fit and sample arguments
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_fit_refuses_epochs_that_are_not_a_positive_integer(name, epochs, gbsg2_table, gbsg2_schema):
    calls = []
    with pytest.raises(ValueError, match="epochs"):
        fit_small(name, gbsg2_table, gbsg2_schema, epochs=epochs, progress=lambda *a: calls.append(a))
    assert calls == []


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("n", [0, -5, 2.5])
def test_sample_refuses_n_that_is_not_a_positive_integer(name, n, fitted):
    with pytest.raises(ValueError, match="n must be"):
        fitted[name].model.sample(n, seed=0)


def test_an_unfitted_model_cannot_sample_or_save(tmp_path):
    model = make_model("copula")
    with pytest.raises(RuntimeError, match="fit"):
        model.sample(10)
    with pytest.raises(RuntimeError, match="fit"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_fit_refuses_a_table_without_the_schema_columns(gbsg2_table, gbsg2_schema):
    with pytest.raises(ValueError, match="tgrade"):
        make_model("copula").fit(gbsg2_table.drop(columns="tgrade"), gbsg2_schema, epochs=1, seed=0)


# ---------------------------------------------------------------------------------------- samples
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_samples_are_typed_like_the_training_frame_and_within_the_schema_bounds(name, fitted, gbsg2_table,
                                                                                gbsg2_schema):
    sample = fitted[name].model.sample(500, seed=1)
    assert_valid_sample(sample, gbsg2_table, gbsg2_schema, 500)
    # every declared category appears in 500 rows of this table (the rarest, grade I, is 12 %)
    for column in ("horTh", "menostat", "tgrade"):
        assert set(sample[column].unique()) == set(gbsg2_table[column].cat.categories), (name, column)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows(name, fitted):
    model = fitted[name].model
    first = model.sample(100, seed=11)
    pd.testing.assert_frame_equal(model.sample(100, seed=11), first)
    assert not model.sample(100, seed=12).equals(first)
    conditioned = {"horTh": {"yes": 0.5, "no": 0.5}}
    pd.testing.assert_frame_equal(model.sample(60, conditions=conditioned, seed=4),
                                  model.sample(60, conditions=conditioned, seed=4))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fitting_twice_with_the_same_seed_gives_the_same_model(name, gbsg2_table, gbsg2_schema):
    hyper = {"continuous": "quantile"} if name == "ctgan" else {}  # skip the mixture fit: the transformer tests own it
    a = fit_small(name, gbsg2_table, gbsg2_schema, epochs=1, seed=5, **hyper)
    b = fit_small(name, gbsg2_table, gbsg2_schema, epochs=1, seed=5, **hyper)
    c = fit_small(name, gbsg2_table, gbsg2_schema, epochs=1, seed=6, **hyper)
    pd.testing.assert_frame_equal(a.sample(100, seed=0), b.sample(100, seed=0))
    assert not c.sample(100, seed=0).equals(a.sample(100, seed=0))
    for key, tensor in a._tensors().items():
        assert torch.equal(tensor, b._tensors()[key]), key


# ---------------------------------------------------------------------------------------- conditions
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_fixed_category_gives_only_that_category(name, fitted, gbsg2_table, gbsg2_schema):
    sample = fitted[name].model.sample(120, conditions={"horTh": "yes"}, seed=2)
    assert_valid_sample(sample, gbsg2_table, gbsg2_schema, 120)
    assert (sample["horTh"] == "yes").all()
    events = fitted[name].model.sample(50, conditions={"cens": 1}, seed=2)
    assert (events["cens"] == 1).all() and len(events) == 50


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_list_of_categories_gives_only_those(name, fitted):
    sample = fitted[name].model.sample(200, conditions={"tgrade": ["II", "III"]}, seed=3)
    assert len(sample) == 200
    assert set(sample["tgrade"].unique()) == {"II", "III"}
    # a category listed twice counts once
    twice = fitted[name].model.sample(40, conditions={"tgrade": ["III", "III"]}, seed=3)
    assert len(twice) == 40 and (twice["tgrade"] == "III").all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_proportions_give_exact_counts_by_largest_remainder(name, fitted):
    model = fitted[name].model
    sample = model.sample(101, conditions={"horTh": {"yes": 0.7, "no": 0.3}}, seed=4)  # 70.7 and 30.3
    assert sample["horTh"].value_counts().to_dict() == {"yes": 71, "no": 30}
    assert not sample["horTh"].iloc[:71].eq("yes").all()  # the groups are interleaved, not stacked
    mixed = model.sample(10, conditions={"menostat": "Post", "tgrade": {"I": 1 / 3, "II": 1 / 3, "III": 1 / 3}},
                         seed=5)
    assert (mixed["menostat"] == "Post").all()
    assert sorted(mixed["tgrade"].value_counts().tolist()) == [3, 3, 4]
    single = model.sample(1, conditions={"horTh": {"yes": 0.5, "no": 0.5}}, seed=6)
    assert len(single) == 1


def test_largest_remainder_always_adds_up_to_n():
    from generators.core.models.base import _largest_remainder

    assert _largest_remainder(101, {"yes": 0.7, "no": 0.3}) == {"yes": 71, "no": 30}
    assert _largest_remainder(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == {"a": 3, "b": 2, "c": 2}
    # shares within the 1e-6 tolerance but above 1: the counts still add up to n
    counts = _largest_remainder(3_000_000, {"a": 0.5000005, "b": 0.5000005})
    assert sum(counts.values()) == 3_000_000 and counts == {"a": 1_500_000, "b": 1_500_000}


@pytest.mark.parametrize("conditions, message", [
    ({"shoe_size": "42"}, "unknown column 'shoe_size'"),
    ({"pid": "3"}, "unknown column 'pid'"),  # identifiers are not stored
    ({"horTh": "maybe"}, "unknown category 'maybe'"),
    ({"tgrade": ["II", "IV"]}, "unknown category 'IV'"),
    ({"horTh": {"yes": 0.5, "perhaps": 0.5}}, "unknown category 'perhaps'"),
    ({"cens": 2}, "unknown category '2'"),
    ({"age": 50}, "only categorical and event"),
    ({"time": {"1": 1.0}}, "only categorical and event"),
    ({"horTh": {"yes": 0.7, "no": 0.4}}, "add up to 1"),
    ({"horTh": {"yes": 0.5}}, "add up to 1"),
    ({"horTh": {"yes": 1.5, "no": -0.5}}, "between 0 and 1"),
    ({"horTh": {"yes": "0.5", "no": 0.5}}, "between 0 and 1"),
    ({"horTh": ["yes"], "tgrade": ["I", "II"]}, "at most one column"),
    ({"horTh": {"yes": 0.5, "no": 0.5}, "menostat": {"Pre": 0.5, "Post": 0.5}}, "at most one column"),
    ({"horTh": []}, "a category, a list of categories"),
    ({"horTh": None}, "a category, a list of categories"),
    ({"horTh": True}, "a category, a list of categories"),
    (["horTh", "yes"], "conditions"),
])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_conditions_that_cannot_be_honoured_raise_condition_error(name, conditions, message, fitted):
    with pytest.raises(ConditionError, match=message):
        fitted[name].model.sample(10, conditions=conditions, seed=0)
    assert issubclass(ConditionError, ValueError)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_category_without_training_rows_cannot_be_asked_for(name, gbsg2_table, gbsg2_schema):
    without_grade_one = gbsg2_table[gbsg2_table["tgrade"] != "I"].reset_index(drop=True)
    hyper = {"continuous": "quantile"} if name == "ctgan" else {}
    model = fit_small(name, without_grade_one, gbsg2_schema, epochs=1, **hyper)
    for conditions in ({"tgrade": "I"}, {"tgrade": ["I", "II"]}, {"tgrade": {"I": 0.5, "III": 0.5}}):
        with pytest.raises(ConditionError, match="no training rows"):
            model.sample(10, conditions=conditions, seed=0)
    sample = model.sample(300, seed=0)
    assert_valid_sample(sample, without_grade_one, gbsg2_schema, 300)
    assert (model.sample(20, conditions={"tgrade": "II"}, seed=0)["tgrade"] == "II").all()


def test_a_conditional_flow_sets_its_context_instead_of_rejecting(gbsg2_table, gbsg2_schema, tmp_path):
    model = fit_small("flow", gbsg2_table, gbsg2_schema, epochs=1, condition_on="tgrade")
    assert len(model.context_cols) == 3
    sample = model.sample(90, conditions={"tgrade": {"I": 0.2, "II": 0.5, "III": 0.3}, "horTh": "no"}, seed=0)
    assert sample["tgrade"].value_counts().to_dict() == {"II": 45, "III": 27, "I": 18}
    assert (sample["horTh"] == "no").all()
    assert_valid_sample(model.sample(200, seed=1), gbsg2_table, gbsg2_schema, 200)
    model.save(tmp_path / "flow")
    pd.testing.assert_frame_equal(load_model(tmp_path / "flow").sample(50, conditions={"tgrade": "I"}, seed=2),
                                  model.sample(50, conditions={"tgrade": "I"}, seed=2))


# ---------------------------------------------------------------------------------------- missing values
@pytest.mark.parametrize("name, epochs, hyper, tolerance", [
    ("copula", 1, {}, 0.08),
    ("flow", 5, {"batch_size": 64, "learning_rate": 1e-2}, 0.08),
    ("ctgan", 5, {"batch_size": 50, "continuous": "quantile"}, 0.2),
])
def test_the_missing_rate_is_reproduced_not_imputed(name, epochs, hyper, tolerance, nullable_table, nullable_schema):
    model = fit_small(name, nullable_table, nullable_schema, epochs=epochs, **hyper)
    real_rate = nullable_table[MISSING_COLUMN].isna().mean()
    sample = model.sample(2000, seed=0)
    assert_valid_sample(sample, nullable_table, nullable_schema, 2000)  # only the nullable column has gaps
    rate = sample[MISSING_COLUMN].isna().mean()
    assert abs(rate - real_rate) <= tolerance, (name, rate, real_rate)


# ---------------------------------------------------------------------------------------- progress and divergence
@pytest.mark.parametrize("name", [per_epoch(n) for n in MODEL_NAMES])
def test_progress_is_called_once_per_epoch_with_finite_losses(name, monkeypatch, gbsg2_table, gbsg2_schema):
    from types import SimpleNamespace

    from generators.core import training

    # Epochs as fast as can be: the training loops' clock stands still, so no epoch looks "slow enough" to report.
    monkeypatch.setattr(training, "time", SimpleNamespace(monotonic=lambda: 0.0), raising=False)
    calls = []
    hyper = {"continuous": "quantile"} if name == "ctgan" else {}
    fit_small(name, gbsg2_table, gbsg2_schema, epochs=4, progress=lambda *a: calls.append(a), **hyper)
    total = 1 if name == "copula" else 4  # a copula has one closed-form "epoch"
    assert [(epoch, of) for epoch, of, _ in calls] == [(e, total) for e in range(1, total + 1)]
    for _epoch, _total, losses in calls:
        assert losses and all(isinstance(k, str) and type(v) is float and math.isfinite(v) for k, v in losses.items())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_progress_reports_the_last_epoch_with_finite_losses(name, fitted):
    """What holds even while progress is throttled: the last call is (epochs, epochs, finite losses)."""
    epoch, total, losses = fitted[name].calls[-1]
    assert epoch == total == (1 if name == "copula" else EPOCHS[name])
    assert losses and all(type(v) is float and math.isfinite(v) for v in losses.values())


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_raising_in_progress_stops_training(name, gbsg2_table, gbsg2_schema):
    calls = []

    def progress(epoch, total, losses):
        calls.append(epoch)
        raise Stop

    hyper = {"continuous": "quantile"} if name == "ctgan" else {}
    model = make_model(name, **{**SMALL[name], **hyper})
    with pytest.raises(Stop):
        model.fit(gbsg2_table, gbsg2_schema, epochs=3, seed=0, progress=progress)
    assert len(calls) == 1 and len(model.history) == 1


@pytest.mark.parametrize("name", ["ctgan", "flow"])
def test_a_nan_loss_raises_training_diverged(name, gbsg2_table, gbsg2_schema):
    """A learning rate of 1e30 makes the first Adam steps overflow the weights: deterministic NaNs."""
    calls = []
    hyper = {"continuous": "quantile"} if name == "ctgan" else {}
    with pytest.raises(TrainingDiverged, match="nan|inf"):
        fit_small(name, gbsg2_table, gbsg2_schema, epochs=3, learning_rate=1e30, progress=lambda *a: calls.append(a),
                  **hyper)
    assert all(math.isfinite(v) for _e, _t, losses in calls for v in losses.values())  # never shown a NaN


def test_a_nan_loss_raises_training_diverged_for_the_copula_too(monkeypatch, gbsg2_table, gbsg2_schema):
    monkeypatch.setattr(torch, "logdet", lambda matrix: torch.tensor(float("nan")))
    calls = []
    with pytest.raises(TrainingDiverged, match="log_det_correlation loss became nan"):
        make_model("copula").fit(gbsg2_table, gbsg2_schema, epochs=1, seed=0, progress=lambda *a: calls.append(a))
    assert calls == []


# ---------------------------------------------------------------------------------------- save and load
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_and_load_round_trip_gives_identical_samples(name, fitted, tmp_path):
    model = fitted[name].model
    model.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left behind

    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["model"] == name and config["hyperparameters"] == {**make_model(name).hyper.__dict__,
                                                                     **SMALL[name]}
    weights = torch.load(tmp_path / "model" / WEIGHTS_FILE, weights_only=True)
    assert weights and all(isinstance(v, torch.Tensor) for v in weights.values())

    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(model) and type(MODELS[name].load(tmp_path / "model")) is type(model)
    pd.testing.assert_frame_equal(loaded.sample(150, seed=9), model.sample(150, seed=9))
    conditions = {"tgrade": ["I", "III"]}
    pd.testing.assert_frame_equal(loaded.sample(40, conditions=conditions, seed=9),
                                  model.sample(40, conditions=conditions, seed=9))


def test_loading_never_unpickles(monkeypatch, fitted, tmp_path):
    fitted["flow"].model.save(tmp_path / "model")
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_model(tmp_path / "model")
    assert seen == [True]


def test_a_pickled_object_in_the_weights_file_is_refused(fitted, tmp_path):
    fitted["copula"].model.save(tmp_path / "model")
    torch.save({"correlation": torch.eye(2), "payload": Stop("not a tensor")}, tmp_path / "model" / WEIGHTS_FILE)
    with pytest.raises(Exception, match="(?i)weights only|weights_only|Unsupported global"):
        load_model(tmp_path / "model")


@pytest.mark.parametrize("saved, loader", [("copula", "flow"), ("flow", "ctgan"), ("ctgan", "copula")])
def test_a_config_naming_another_model_is_refused(saved, loader, fitted, tmp_path):
    fitted[saved].model.save(tmp_path / "model")
    with pytest.raises(ValueError, match=f"holds a '{saved}' model, not '{loader}'"):
        MODELS[loader].load(tmp_path / "model")


def test_a_config_naming_an_unknown_model_is_refused(fitted, tmp_path):
    fitted["copula"].model.save(tmp_path / "model")
    config_file = tmp_path / "model" / CONFIG_FILE
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model"] = "os.system"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model 'os.system'"):
        load_model(tmp_path / "model")


def _boom(*args, **kwargs):
    raise OSError("disk full (test)")


def test_a_failed_first_save_leaves_no_target_and_no_staging_folder(monkeypatch, fitted, tmp_path):
    monkeypatch.setattr(torch, "save", _boom)
    with pytest.raises(OSError, match="disk full"):
        fitted["copula"].model.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_leaves_the_old_model_intact(monkeypatch, fitted, tmp_path):
    target = tmp_path / "model"
    fitted["copula"].model.save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    monkeypatch.setattr(torch, "save", _boom)
    with pytest.raises(OSError, match="disk full"):
        fitted["flow"].model.save(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert type(load_model(target)).name == "copula"


def test_a_successful_overwrite_replaces_the_old_model_whole(fitted, tmp_path):
    target = tmp_path / "model"
    fitted["copula"].model.save(target)
    (target / "stray.txt").write_text("left by hand")
    fitted["flow"].model.save(target)
    assert sorted(p.name for p in target.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert type(load_model(target)).name == "flow"
