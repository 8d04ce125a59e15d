from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Holds the base templates, static files and browser code; no models."""

    name = "frontend"
