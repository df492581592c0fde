"""``manage.py train SLUG --model M --epochs N --seed S``: trains (in-process without a broker),
shows a progress bar on stderr, prints the run id last; refuses bad input and stores nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from clearinghouse.models import AuditEvent
from generators.core.models.copula import GaussianCopula
from generators.models import GeneratorRun
from tests.generators.runs_fixtures import entries, models_dir  # noqa: F401


def train(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("train", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_train_prints_the_run_id_last(custodian, dataset, models_dir):
    out, err = train("gbsg2-small", model="copula", epochs=1, seed=0, no_progress=True)
    run = GeneratorRun.objects.get()
    assert out.strip().splitlines()[-1] == str(run.pk)
    assert run.status == "succeeded", run.error
    assert (run.model, run.epochs, run.seed, run.device_requested) == ("copula", 1, 0, "auto")
    assert run.created_by == custodian[0]
    assert run.worker == "train command"
    assert (models_dir / run.checkpoint_name / "weights.pt.fernet").is_file()
    assert "succeeded" in err
    assert "epoch" not in err.replace("epochs", "")  # no bar
    create = AuditEvent.objects.get(action="run.create")
    assert (create.actor_id, create.channel, create.object_id) == (custodian[0].pk, "command", str(run.pk))
    assert list(AuditEvent.objects.filter(object_type="run").values_list("action", flat=True)) == [
        "run.create", "run.start", "run.finish"]


@pytest.mark.django_db
def test_train_shows_a_progress_bar_on_stderr(custodian, dataset, models_dir):
    out, err = train("gbsg2-small", "--model", "flow", "--epochs", "2", "--seed", "3", "--device", "cpu",
                     "--set", "hidden_width=16")
    run = GeneratorRun.objects.get()
    assert out.strip().splitlines() == [str(run.pk)]  # stdout holds the id only
    assert f"run {run.pk} flow" in err
    assert "2/2" in err and "epoch" in err
    assert "negative_log_likelihood" in err  # the last losses beside the bar
    assert run.status == "succeeded" and run.device == "cpu"


@pytest.mark.django_db
def test_set_parses_hyperparameters(custodian, dataset, models_dir):
    out, _ = train("gbsg2-small", "--model", "ctgan", "--epochs", "1", "--set", "batch_size=10",
                   "--set", "generator_width=16", "--set", "critic_width=16", "--set", "continuous=quantile",
                   "--no-progress")
    run = GeneratorRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert run.hyperparameters == {"batch_size": 10, "generator_width": 16, "critic_width": 16,
                                   "continuous": "quantile"}
    assert isinstance(run.hyperparameters["batch_size"], int)
    assert run.status == "succeeded", run.error


@pytest.mark.django_db
@pytest.mark.parametrize("args, named", [
    (["--model", "gan", "--epochs", "1"], "gan"),
    (["--model", "copula", "--epochs", "0"], "epochs"),
    (["--model", "copula", "--epochs", "1", "--seed", "-1"], "seed"),
    (["--model", "copula", "--epochs", "1", "--set", "n_quantiles=many"], "n_quantiles"),
    (["--model", "copula", "--epochs", "1", "--set", "nope=1"], "nope"),
    (["--model", "copula", "--epochs", "1", "--set", "n_quantiles"], "NAME=VALUE"),
    (["--model", "flow", "--epochs", "1", "--set", "condition_on=age"], "condition_on"),
    (["--model", "ctgan"], "epochs is required for ctgan"),
])
def test_bad_input_is_refused_and_stores_nothing(custodian, dataset, models_dir, args, named):
    with pytest.raises(CommandError) as refused:
        train("gbsg2-small", *args, "--no-progress")
    assert named in str(refused.value)
    assert GeneratorRun.objects.count() == 0
    assert entries(models_dir) == set()
    assert not AuditEvent.objects.filter(action="run.create").exists()


@pytest.mark.django_db
def test_unknown_dataset(custodian, models_dir):
    with pytest.raises(CommandError) as refused:
        train("nope", model="copula", epochs=1, no_progress=True)
    assert "nope" in str(refused.value)
    assert GeneratorRun.objects.count() == 0


@pytest.mark.django_db
def test_unknown_custodian(custodian, dataset, models_dir):
    with pytest.raises(CommandError) as refused:
        train("gbsg2-small", model="copula", epochs=1, by="rhea", no_progress=True)
    assert "rhea" in str(refused.value)
    assert GeneratorRun.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_run_is_a_command_error(custodian, dataset, models_dir, monkeypatch):
    def diverging_fit(self, table, *, epochs, seed, progress):
        self._report(progress, 1, epochs, {"loss": float("inf")})

    monkeypatch.setattr(GaussianCopula, "_fit", diverging_fit)
    with pytest.raises(CommandError) as failed:
        train("gbsg2-small", model="copula", epochs=1, no_progress=True)
    run = GeneratorRun.objects.get()
    assert str(run.pk) in str(failed.value) and "failed" in str(failed.value)
    assert run.status == "failed" and "diverged" in run.error
    assert entries(models_dir) == set()


@pytest.mark.django_db
def test_the_copula_trains_without_epochs(custodian, dataset, models_dir):
    out, _err = train("gbsg2-small", model="copula", no_progress=True)
    run = GeneratorRun.objects.get()
    assert out.strip().splitlines()[-1] == str(run.pk) and run.status == "succeeded", run.error
