from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from clearinghouse.management.base import AuditedCommand, custodian_for
from clearinghouse.models import Dataset
from releases.models import Sweep
from releases.sweeps import DEFAULT_MODELS, sweep_create, sweep_execute


class Command(AuditedCommand):
    help = ("Model selection: train every model × seed, sample each run --samples times, report on every "
            "release and rank those that pass the dataset's gates. Without a broker it runs in this process; "
            "with one it is queued. Prints the ranking, then the proposed release id as its last line.")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--models", nargs="+", default=None,
                            help=f"e.g. --models copula ctgan (default: every model, {' '.join(DEFAULT_MODELS)})")
        parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
        parser.add_argument("--samples", type=int, default=3, help="releases per run (default 3)")
        parser.add_argument("--epochs", type=int, required=True)
        parser.add_argument("--rows", type=int, default=None, help="rows per release (default: the cohort's size)")
        parser.add_argument("--by", default=None, metavar="USERNAME", help="the custodian (default: the only one)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(slug=options["slug"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['slug']!r}.")
        if options["seeds"] < 1:
            raise CommandError("--seeds must be at least 1")
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        sweep = sweep_create(dataset=dataset, models=options["models"], seeds=list(range(options["seeds"])),
                             samples=options["samples"], epochs=options["epochs"], rows=options["rows"],
                             by=custodian_for(options["by"]), enqueue=not eager)
        if not eager:
            self.stderr.write(f"Sweep {sweep.pk} queued; follow it at /api/v1/sweeps/{sweep.pk}/.")
            self.stdout.write(str(sweep.pk))
            return
        bar = tqdm(total=sweep.steps_total, desc=f"sweep {sweep.pk}", unit="step", file=self.stderr._out,
                   disable=options["no_progress"], dynamic_ncols=True)

        def relay(current: Sweep) -> None:
            bar.update(current.steps_done - bar.n)
            bar.set_postfix_str(current.stage, refresh=False)

        try:
            sweep = sweep_execute(sweep.pk, relay=relay) or sweep
        finally:
            bar.close()
        sweep.refresh_from_db()
        if sweep.status != Sweep.Status.SUCCEEDED:
            raise CommandError(f"sweep {sweep.pk} {sweep.status}: {sweep.error}")
        for row in sweep.candidates:
            composite = f"{row['composite']:.3f}" if row.get("composite") is not None else "  n/a"
            if row.get("passed"):
                verdict = "passes every gate"
            elif row.get("failed_gates"):
                verdict = "fails " + ", ".join(g["gate"] for g in row["failed_gates"])
            else:
                verdict = f"fails ({row.get('error') or 'no report'})"
            self.stderr.write(f"  #{row['rank'] or '-':<3} release {row.get('release', '-')}: {row['model']} seed "
                              f"{row['seed']} sample {row.get('sample', '-')}  composite {composite}  {verdict}")
        if sweep.proposed_release_id is None:
            raise CommandError(f"sweep {sweep.pk}: {sweep.error}")
        self.stderr.write(f"Sweep {sweep.pk} proposes release {sweep.proposed_release_id} (a draft; publish it "
                          "with `release --publish` or POST /api/v1/releases/{id}/publish/).")
        self.stdout.write(str(sweep.proposed_release_id))
