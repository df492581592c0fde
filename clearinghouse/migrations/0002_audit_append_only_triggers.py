"""Database-level guard: the audit table refuses UPDATE, DELETE (and TRUNCATE of a non-empty table on PostgreSQL).

The ORM already refuses these (AppendOnlyModel); the triggers stop raw SQL too. A
superuser can still disable a trigger, which is why the hash chain exists: any change
made that way is caught by /api/v1/audit/verify/.
"""

from django.db import migrations

from clearinghouse.migrations._append_only import append_only_sql


def make_operation(table: str) -> migrations.RunPython:
    def forward(apps, schema_editor):
        for sql in append_only_sql(table, schema_editor.connection.vendor)[0]:
            schema_editor.execute(sql, params=None)

    def backward(apps, schema_editor):
        for sql in append_only_sql(table, schema_editor.connection.vendor)[1]:
            schema_editor.execute(sql, params=None)

    return migrations.RunPython(forward, backward)


class Migration(migrations.Migration):
    dependencies = [("clearinghouse", "0001_initial")]
    operations = [make_operation("clearinghouse_auditevent")]
