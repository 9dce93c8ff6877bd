"""`python -m services.triage`: run the triage service (same as `civicbus run triage`)."""

from civicbus.service import serve

from .app import create_app
from .settings import TriageSettings

settings = TriageSettings()
serve(create_app(settings), settings)
