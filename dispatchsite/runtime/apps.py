from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """Registers the runtime's ops and commands through autodiscovery; no models."""

    name = "dispatchsite.runtime"
    label = "dispatch_runtime"
