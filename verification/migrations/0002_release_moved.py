"""Verification.release now points at ``releases.Release`` (the same table; state only)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('verification', '0001_initial'),
        ('releases', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='verification',
                    name='release',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='verifications', to='releases.release'),
                ),
            ],
        ),
    ]
