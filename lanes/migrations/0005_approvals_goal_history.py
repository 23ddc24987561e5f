import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lanes", "0004_token_scopes_audit_actor")]

    operations = [
        migrations.AddField(
            model_name="serverrequest",
            name="answered_by",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="serverrequest",
            name="connection",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="serverrequest",
            name="decision",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name="serverrequest",
            name="held",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="serverrequest",
            name="host",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AlterField(
            model_name="serverrequest",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("responded", "Responded"),
                    ("failed", "Failed"),
                    ("expired", "Expired"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="serverrequest",
            index=models.Index(fields=["state", "held"], name="server_request_pending"),
        ),
        migrations.CreateModel(
            name="LaneGoal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("objective", models.TextField()),
                ("status", models.CharField(blank=True, max_length=32)),
                ("token_budget", models.BigIntegerField(blank=True, null=True)),
                ("tokens_used", models.BigIntegerField(blank=True, null=True)),
                ("time_used_seconds", models.BigIntegerField(blank=True, null=True)),
                ("codex_created_at", models.BigIntegerField(blank=True, null=True)),
                ("set_by", models.CharField(blank=True, max_length=200)),
                ("cleared_by", models.CharField(blank=True, max_length=200)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now),
                ),
                (
                    "updated_at",
                    models.DateTimeField(default=django.utils.timezone.now),
                ),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("cleared_at", models.DateTimeField(blank=True, null=True)),
                (
                    "lane",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="goals",
                        to="lanes.lane",
                    ),
                ),
            ],
            options={
                "ordering": ["lane", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("cleared_at__isnull", True)),
                        fields=("lane",),
                        name="lane_goal_one_current",
                    )
                ],
            },
        ),
    ]
