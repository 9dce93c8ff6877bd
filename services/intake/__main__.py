"""`python -m services.intake`: run the intake service (same as `civicbus run intake`)."""

from civicbus.service import serve

from .app import create_app
from .settings import IntakeSettings

settings = IntakeSettings()
serve(create_app(settings), settings)
