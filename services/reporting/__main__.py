"""`python -m services.reporting`: run the reporting service (same as `civicbus run reporting`)."""

from civicbus.service import run_service

run_service("reporting")
