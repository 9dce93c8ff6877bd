from civicbus.service import serve
from civicbus.settings import ReportingSettings

from .app import create_app

settings = ReportingSettings()
serve(create_app(settings), settings)
