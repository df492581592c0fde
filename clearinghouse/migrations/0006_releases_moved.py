"""Release and ReleaseReport moved to the ``releases`` app (their tables keep their names;
state only). Runs after every foreign key to them points at the new app."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('clearinghouse', '0005_release_report'),
        ('releases', '0001_initial'),
        ('generators', '0003_sweep_moved'),
        ('verification', '0002_release_moved'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name='ReleaseReport'),
                migrations.DeleteModel(name='Release'),
            ],
        ),
    ]
