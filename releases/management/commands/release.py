import json
import time

from django.conf import settings
from django.core.management.base import CommandError

from clearinghouse.management.base import AuditedCommand, custodian_for
from generators.models import GeneratorRun
from releases.models import ReleaseReport
from releases.services import release_create, release_publish


class Command(AuditedCommand):
    help = ("Sample a synthetic release from a succeeded training run (CSV, Parquet and a datasheet), "
            "optionally publish it. Prints the release id as its last line.")

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="the run id")
        parser.add_argument("--rows", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--conditions", default=None, metavar="JSON",
                            help='e.g. \'{"horTh": "yes"}\' or \'{"horTh": {"yes": 0.5, "no": 0.5}}\'')
        parser.add_argument("--publish", action="store_true", help="publish it to verified researchers")
        parser.add_argument("--by", default=None, metavar="USERNAME", help="the custodian (default: the only one)")

    def handle(self, *args, **options):
        run = GeneratorRun.objects.select_related("dataset").filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run with id {options['run']}.")
        conditions = None
        if options["conditions"]:
            try:
                conditions = json.loads(options["conditions"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--conditions is not valid JSON: {exc.msg}") from None
        by = custodian_for(options["by"])
        release = release_create(run=run, rows=options["rows"], seed=options["seed"], conditions=conditions, by=by)
        self.stderr.write(f"Release {release.pk}: {release.rows} rows from run {run.pk} ({run.model} on "
                          f"{run.dataset.slug}), {release.csv_bytes} bytes of CSV.")
        if options["publish"]:
            self._wait_for_report(release)
            release_publish(release=release, by=by)
            self.stderr.write(f"Published: /api/v1/releases/{release.pk}/data.csv")
        self.stdout.write(str(release.pk))

    def _wait_for_report(self, release) -> None:
        """With a broker the report is computed by a worker: wait for it (publishing needs it).
        Without one it was computed when the release committed, or will not be: nothing to wait for."""
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return
        deadline = time.monotonic() + settings.REPORT_TIME_LIMIT_SECONDS + 60
        announced = False
        while time.monotonic() < deadline:
            report = ReleaseReport.objects.filter(release=release).first()
            if report is None or report.finished:
                return
            if not announced:
                self.stderr.write(f"Waiting for release {release.pk}'s validation report (computed by a worker) ...")
                announced = True
            time.sleep(1.0)
