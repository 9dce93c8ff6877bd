from civicbus.service import serve
from civicbus.settings import TriageSettings

from .app import create_app

settings = TriageSettings()
serve(create_app(settings), settings)
