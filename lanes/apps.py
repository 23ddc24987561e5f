from django.apps import AppConfig


class LanesConfig(AppConfig):
    name = "lanes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dispatchsite.core.schedules import register_beat_entry
        from lanes.journal.upkeep import JOURNAL_UPKEEP

        register_beat_entry(JOURNAL_UPKEEP)

        from lanes.services.goals import goal_history_follow
        from lanes.signals import lane_events_journaled

        lane_events_journaled.connect(
            goal_history_follow, dispatch_uid="lanes.goal_history"
        )
