"""The budget ledger refuses UPDATE and DELETE at the database too (as the audit table does)."""

from django.db import migrations

from clearinghouse.migrations._append_only import append_only_sql


def forward(apps, schema_editor):
    for sql in append_only_sql("accounts_ledgerentry", schema_editor.connection.vendor)[0]:
        schema_editor.execute(sql, params=None)


def backward(apps, schema_editor):
    for sql in append_only_sql("accounts_ledgerentry", schema_editor.connection.vendor)[1]:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_ledgerentry_verification_and_more"), ("clearinghouse", "0002_audit_append_only_triggers")]
    operations = [migrations.RunPython(forward, backward)]
