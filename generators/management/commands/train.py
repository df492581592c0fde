import json
import time

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from clearinghouse.management.base import AuditedCommand, custodian_for
from clearinghouse.models import Dataset
from generators.models import GeneratorRun
from generators.services import run_create, run_execute


def _hyperparameter(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CommandError(f"--set expects NAME=VALUE, not {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


class Command(AuditedCommand):
    help = ("Train a generator on a dataset held in custody (a seeded 80 % split), showing a progress bar. "
            "Without a broker the run trains in this process; with one it is queued and followed. "
            "Prints the run id as its last line.")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--model", required=True, help="ctgan, flow or copula")
        parser.add_argument("--epochs", type=int, default=None,
                            help="required for ctgan and flow; the copula has none (fitted in one pass)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto", choices=GeneratorRun.Device.values)
        parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="hyperparameters",
                            help="a hyperparameter, e.g. --set batch_size=250 (repeatable)")
        parser.add_argument("--by", default=None, metavar="USERNAME", help="the custodian (default: the only one)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(slug=options["slug"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['slug']!r}.")
        hyperparameters = dict(_hyperparameter(h) for h in options["hyperparameters"])
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        run = run_create(dataset=dataset, model=options["model"], epochs=options["epochs"], seed=options["seed"],
                         device=options["device"], hyperparameters=hyperparameters,
                         by=custodian_for(options["by"]), enqueue=not eager)
        bar = tqdm(total=run.epochs, desc=f"run {run.pk} {run.model}", unit="epoch", file=self.stderr._out,
                   disable=options["no_progress"], dynamic_ncols=True)
        try:
            if eager:
                def relay(epoch, total, losses):
                    bar.update(epoch - bar.n)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)

                run_execute(run.pk, worker="train command", relay=relay)
            else:
                self._follow(run, bar)
        finally:
            bar.close()
        run.refresh_from_db()
        if run.status != GeneratorRun.Status.SUCCEEDED:
            self.stderr.write(f"Run {run.pk} {run.status}: {run.error}")
            raise CommandError(f"run {run.pk} {run.status}")
        self.stderr.write(f"Run {run.pk} succeeded on {run.device} in {run.elapsed_seconds:.1f} s "
                          f"({run.n_train} training rows).")
        self.stdout.write(str(run.pk))

    def _follow(self, run: GeneratorRun, bar) -> None:
        self.stderr.write(f"Run {run.pk} queued on {run.queue!r}; following it (Ctrl-C stops following, not the run).")
        while True:
            run.refresh_from_db()
            bar.update(run.epoch - bar.n)
            if run.losses:
                bar.set_postfix({k: f"{v:.3g}" for k, v in run.losses.items()}, refresh=False)
            if run.finished:
                return
            time.sleep(1.0)
