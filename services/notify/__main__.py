from civicbus.service import serve
from civicbus.settings import NotifySettings

from .app import create_app

settings = NotifySettings()
serve(create_app(settings), settings)
