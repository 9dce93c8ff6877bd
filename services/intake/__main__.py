from civicbus.service import serve
from civicbus.settings import IntakeSettings

from .app import create_app

settings = IntakeSettings()
serve(create_app(settings), settings)
