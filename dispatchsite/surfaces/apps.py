from django.apps import AppConfig


class SurfacesConfig(AppConfig):
    """Registers the surfaces' commands through autodiscovery; no models."""

    name = "dispatchsite.surfaces"
    label = "dispatch_surfaces"
