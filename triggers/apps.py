from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dispatchsite.core.schedules import register_beat_entry
        from lanes.signals import lane_events_journaled
        from triggers.beat import TRIGGER_PRUNE, TRIGGER_TICK
        from triggers.events import on_events_journaled

        register_beat_entry(TRIGGER_TICK)
        register_beat_entry(TRIGGER_PRUNE)
        lane_events_journaled.connect(
            on_events_journaled, dispatch_uid="triggers-events-journaled"
        )
