"""`python -m services.notify`: run the notify service (same as `civicbus run notify`)."""

from civicbus.service import serve

from .app import create_app
from .settings import NotifySettings

settings = NotifySettings()
serve(create_app(settings), settings)
