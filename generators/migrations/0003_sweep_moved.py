"""Sweep moved to the ``releases`` app (its table keeps its name; state only)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('generators', '0002_sweep'),
        ('releases', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name='Sweep')],
        ),
    ]
