"""Flow sampling at scale: a fixed number of network passes per chunk of rows, whatever the rows;
the group-by-group inverse equals zuko's; rejection under a conditional flow always ends; seeds
reproduce; a checkpoint saved before ``passes`` existed restores fully autoregressive."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import zuko
from zuko.flows.autoregressive import MaskedAutoregressiveTransform

from generators.core.models import ConditionError, load_model
from generators.core.models import flow as flow_module
from generators.core.models.flow import invert
from tests.generators.conftest import fit_small


@pytest.fixture(scope="module")
def nullable_flow(nullable_table, nullable_schema):
    return fit_small("flow", nullable_table, nullable_schema, epochs=2)


@pytest.fixture(scope="module")
def conditional_flow(gbsg2_table, gbsg2_schema):
    return fit_small("flow", gbsg2_table, gbsg2_schema, epochs=1, condition_on="tgrade")


def count_passes(model) -> list[int]:
    """A list that grows by one per network pass (the first layer of any transform's network)."""
    calls: list[int] = []
    for lazy in model.flow.transform.transforms:
        lazy.hyper[0].register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_it_calls_the_network_as_often_for_5000_rows_as_for_100(nullable_flow, tmp_path):
    nullable_flow.save(tmp_path / "m")
    model = load_model(tmp_path / "m")  # its own copy: hooks stay off the shared fixture
    calls = count_passes(model)
    model.sample(100, seed=0)
    few = len(calls)
    calls.clear()
    model.sample(5000, seed=0)
    assert len(calls) == few
    # one transform of the small flow, four groups: the first group's pass runs on one row
    assert few == model.hyper.transforms * model.hyper.passes == 4


def test_chunks_bound_the_batch_and_leave_the_rows_unchanged(nullable_flow, tmp_path, monkeypatch):
    nullable_flow.save(tmp_path / "m")
    model = load_model(tmp_path / "m")
    whole = model.sample(2500, seed=3)
    calls = count_passes(model)
    monkeypatch.setattr(flow_module, "CHUNK_ROWS", 1000)
    chunked = model.sample(2500, seed=3)
    assert len(calls) == 3 * model.hyper.transforms * model.hyper.passes  # three chunks, not 2500 rows
    pd.testing.assert_frame_equal(chunked, whole)


@pytest.mark.parametrize("passes, context", [(None, 0), (2, 0), (4, 3), (None, 2)])
def test_the_group_by_group_inverse_equals_zukos(passes, context):
    torch.manual_seed(0)
    flow = zuko.flows.NSF(features=9, context=context, transforms=3, bins=6, hidden_features=(32, 32),
                          passes=passes).eval()
    with torch.no_grad():
        for parameter in flow.parameters():  # a trained-looking flow: splines far from the identity
            parameter.add_(0.5 * torch.randn_like(parameter))
        z = torch.randn(300, 9)
        c = torch.randn(300, context) if context else None
        expected = (flow(c) if context else flow()).transform.inv(z)
        got = invert(flow, z, c)
        assert (got - z).abs().max() > 0.1  # the test sees a real transformation
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_seeds_reproduce_and_differ(nullable_flow):
    a = nullable_flow.sample(300, seed=11)
    pd.testing.assert_frame_equal(a, nullable_flow.sample(300, seed=11))
    assert not a.equals(nullable_flow.sample(300, seed=12))
    assert a["tsize"].isna().any() and a["tsize"].notna().any()  # the missing indicator still decodes


def test_a_condition_the_model_never_meets_ends_in_a_condition_error(conditional_flow, monkeypatch):
    decoded: list[int] = []
    decode = type(conditional_flow)._decode

    def never_yes(self, context, n, gen):  # a model that never generates horTh = yes
        decoded.append(n)
        rows = decode(self, context, n, gen)
        rows["horTh"] = rows["horTh"].where(rows["horTh"] != "yes", "no")
        return rows

    monkeypatch.setattr(type(conditional_flow), "_decode", never_yes)
    # the context sets tgrade; horTh is found by rejection, which gives up after 50,000 fruitless draws
    with pytest.raises(ConditionError, match="too rare"):
        conditional_flow.sample(20, conditions={"tgrade": "II", "horTh": "yes"}, seed=0)
    assert 50_000 <= sum(decoded) <= 250_000 and len(decoded) <= 6  # batches grow with the misses
    monkeypatch.undo()
    rows = conditional_flow.sample(200, conditions={"tgrade": "II", "horTh": "yes"}, seed=0)
    assert len(rows) == 200 and (rows["tgrade"] == "II").all() and (rows["horTh"] == "yes").all()


def test_a_checkpoint_saved_before_passes_existed_restores_fully_autoregressive(gbsg2_table, gbsg2_schema,
                                                                                tmp_path):
    # The old layout: zuko's default (passes=None) with every feature its own group.
    old = fit_small("flow", gbsg2_table, gbsg2_schema, epochs=1, passes=1000)
    features = len(old.feature_cols)
    old.save(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    config = json.loads(config_file.read_text())
    del config["hyperparameters"]["passes"], config["state"]["passes"]  # as written before the change
    config_file.write_text(json.dumps(config))

    restored = load_model(tmp_path / "old")
    assert restored.hyper.passes == features
    assert [t.passes for t in restored.flow.transform.transforms] == [features] * restored.hyper.transforms
    assert all(isinstance(t, MaskedAutoregressiveTransform) for t in restored.flow.transform.transforms)
    pd.testing.assert_frame_equal(restored.sample(200, seed=5), old.sample(200, seed=5))
    z = torch.randn(50, features)
    with torch.no_grad():  # zuko's own inverse agrees: its pass count was restored, not only the masks
        torch.testing.assert_close(restored.flow().transform.inv(z), old.flow().transform.inv(z))
    # saved again, it says what it is
    restored.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["state"]["passes"] == features


def test_a_new_fit_is_not_fully_autoregressive(nullable_flow):
    assert nullable_flow.hyper.passes == 4
    groups = {int(t.order.max()) + 1 for t in nullable_flow.flow.transform.transforms}
    assert groups == {4} and len(nullable_flow.feature_cols) > 4
