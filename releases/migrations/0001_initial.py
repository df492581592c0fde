"""Release, ReleaseReport and Sweep move here from ``clearinghouse`` and ``generators``.

State only: the tables keep their names (``clearinghouse_release``, ``clearinghouse_releasereport``,
``generators_sweep``), so no row moves. The old apps' migrations that follow delete the models
from their own state.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('clearinghouse', '0005_release_report'),
        ('generators', '0002_sweep'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
        migrations.CreateModel(
                    name='Release',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('rows', models.PositiveIntegerField()),
                        ('seed', models.PositiveBigIntegerField()),
                        ('conditions', models.JSONField(blank=True, help_text='As asked, e.g. {"horTh": "yes"}.', null=True)),
                        ('datasheet', models.JSONField(help_text='Provenance and known limits (also written as datasheet.json).')),
                        ('storage_name', models.CharField(editable=False, max_length=100, unique=True)),
                        ('csv_bytes', models.PositiveBigIntegerField()),
                        ('csv_sha256', models.CharField(max_length=64)),
                        ('parquet_bytes', models.PositiveBigIntegerField()),
                        ('parquet_sha256', models.CharField(max_length=64)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('published_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='releases', to='clearinghouse.dataset')),
                        ('gate_override', models.JSONField(blank=True, help_text='Set when a custodian published despite failed gates: the written justification, the failed gates with their values, who and when.', null=True)),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='releases', to='generators.generatorrun')),
                        ('published_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'clearinghouse_release',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
        migrations.CreateModel(
                    name='ReleaseReport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], db_index=True, default='pending', max_length=16)),
                        ('stage', models.CharField(blank=True, help_text="The part being computed, e.g. 'privacy'.", max_length=32)),
                        ('parts_done', models.PositiveSmallIntegerField(default=0)),
                        ('parts_total', models.PositiveSmallIntegerField(default=0)),
                        ('target', models.CharField(blank=True, help_text='The utility classification column.', max_length=200)),
                        ('content', models.JSONField(blank=True, default=dict)),
                        ('public', models.JSONField(blank=True, default=dict)),
                        ('html', models.TextField(blank=True)),
                        ('public_html', models.TextField(blank=True)),
                        ('error', models.TextField(blank=True)),
                        ('requested_at', models.DateTimeField()),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('release', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='report', to='releases.release')),
                    ],
                    options={
                        'db_table': 'clearinghouse_releasereport',
                    },
                ),
        migrations.CreateModel(
                    name='Sweep',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('model_names', models.JSONField(help_text='Model names, e.g. ["copula", "ctgan"].')),
                        ('seeds', models.JSONField(help_text='Training seeds.')),
                        ('samples', models.PositiveSmallIntegerField(help_text='Releases sampled per trained run.')),
                        ('epochs', models.PositiveIntegerField()),
                        ('rows', models.PositiveIntegerField(help_text='Rows per release.')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16)),
                        ('stage', models.CharField(blank=True, max_length=200)),
                        ('steps_done', models.PositiveIntegerField(default=0)),
                        ('steps_total', models.PositiveIntegerField(default=0)),
                        ('candidates', models.JSONField(default=list, help_text='One entry per release: gates, composite, headline.')),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='sweeps', to='clearinghouse.dataset')),
                        ('proposed_release', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='releases.release')),
                    ],
                    options={
                        'db_table': 'generators_sweep',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
            ],
        ),
    ]
