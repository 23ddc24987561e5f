from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("lanes", "0003_event_turn_index")]

    operations: list[migrations.operations.base.Operation] = []
