from django.apps import AppConfig


class LanesConfig(AppConfig):
    name = "lanes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dispatchsite.core.schedules import register_beat_entry
        from lanes.journal.retention import JOURNAL_UPKEEP

        register_beat_entry(JOURNAL_UPKEEP)
