"""Database-level guard: the audit table refuses UPDATE, DELETE (and TRUNCATE on PostgreSQL).

The ORM already refuses these (AppendOnlyModel); the triggers stop raw SQL too. A
superuser can still disable a trigger, which is why the hash chain exists: any change
made that way is caught by /api/v1/audit/verify/.
"""

from django.db import migrations

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION clearinghouse_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def append_only_sql(table: str, vendor: str) -> tuple[list[str], list[str]]:
    if vendor == "postgresql":
        forward = [
            PG_FUNCTION,
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION clearinghouse_refuse_change();",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION clearinghouse_refuse_change();",
        ]
        backward = [f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};",
                    f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};"]
    elif vendor == "sqlite":
        forward = [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: UPDATE refused'); END;",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: DELETE refused'); END;",
        ]
        backward = [f"DROP TRIGGER IF EXISTS {table}_no_update;", f"DROP TRIGGER IF EXISTS {table}_no_delete;"]
    else:  # pragma: no cover - settings allow only these two
        forward = backward = []
    return forward, backward


def make_operation(table: str) -> migrations.RunPython:
    def forward(apps, schema_editor):
        for sql in append_only_sql(table, schema_editor.connection.vendor)[0]:
            schema_editor.execute(sql)

    def backward(apps, schema_editor):
        for sql in append_only_sql(table, schema_editor.connection.vendor)[1]:
            schema_editor.execute(sql)

    return migrations.RunPython(forward, backward)


class Migration(migrations.Migration):
    dependencies = [("clearinghouse", "0001_initial")]
    operations = [make_operation("clearinghouse_auditevent")]
