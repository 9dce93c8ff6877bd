"""`python -m services.reporting`: run the reporting service (same as `civicbus run reporting`)."""

from civicbus.service import serve

from .app import create_app
from .settings import ReportingSettings

settings = ReportingSettings()
serve(create_app(settings), settings)
