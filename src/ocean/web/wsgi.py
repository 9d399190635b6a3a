"""The WSGI entry point for gunicorn: ``ocean.web.wsgi:app`` (settings from ``OCEAN_*``)."""
from . import serving

app = serving.app()
