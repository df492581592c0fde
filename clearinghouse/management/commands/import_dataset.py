import json
from pathlib import Path

from django.core.management.base import CommandError

from clearinghouse.errors import ApplicationError
from clearinghouse.management.base import AuditedCommand, custodian_for
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record
from clearinghouse.services.datasets import dataset_create
from clearinghouse.tabular import TableError, infer_schema


class Command(AuditedCommand):
    help = (
        "Take a real CSV into custody under SLUG, checked row by row against --schema. "
        "With --infer-schema OUT.json, only draft a schema for review (bounds rounded outward) and import nothing. "
        "Prints the dataset slug as its last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("csv", type=Path)
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--schema", type=Path, help="the reviewed schema (JSON)")
        group.add_argument("--infer-schema", type=Path, metavar="OUT.json", help="write a draft schema and stop")
        parser.add_argument("--name", default=None, help="display name (default: the slug)")
        parser.add_argument("--description", default="")
        parser.add_argument("--by", default=None, metavar="USERNAME",
                            help="the custodian taking custody (default: the only custodian)")

    def handle(self, *args, **options):
        # call_command() hands keyword options over unconverted (a str, not a Path)
        csv_path = Path(options["csv"])
        try:
            csv_path.open("rb").close()  # readable: a failure is named before anything else
        except OSError as exc:
            raise CommandError(f"Cannot read {csv_path}: {exc.strerror}") from None
        if options["infer_schema"]:
            data = csv_path.read_bytes()
            out = Path(options["infer_schema"])
            try:
                draft = infer_schema(data)
            except TableError as exc:
                raise CommandError(exc.message) from None
            out.write_text(json.dumps(draft, indent=2) + "\n", encoding="utf-8")
            self.stderr.write(f"Draft schema written to {out}: review types, bounds, categories "
                              "and the survival pair before importing with --schema.")
            self.stdout.write(str(out))
            return
        schema_path = Path(options["schema"])
        by = custodian_for(options["by"])
        try:
            try:
                schema = json.loads(schema_path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise CommandError(f"Cannot read {schema_path}: {exc.strerror}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                where = f"{exc.msg} (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
                raise ApplicationError(f"{schema_path} is not valid JSON: {where}", code="invalid_schema") from None
            dataset = dataset_create(
                slug=options["slug"], name=options["name"] or options["slug"], description=options["description"],
                schema=schema, data=csv_path, by=by,  # read in chunks, never whole
            )
        except ApplicationError as exc:
            # A refused import is audited like a refused upload (the API's exception handler does it there).
            audit_record(action="dataset.upload", outcome=AuditEvent.Outcome.REFUSED, actor=by, object_type="dataset",
                         details={"code": exc.code, "message": exc.message[:500], "slug": str(options["slug"])[:64],
                                  "command": "import_dataset"})
            raise
        self.stderr.write(f"Imported {dataset.n_rows} rows × {dataset.n_columns} columns"
                          + (f"; dropped identifier column(s) {', '.join(dataset.dropped_columns)}" if dataset.dropped_columns else ""))
        self.stdout.write(dataset.slug)
