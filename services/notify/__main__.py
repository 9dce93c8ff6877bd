"""`python -m services.notify`: run the notify service (same as `civicbus run notify`)."""

from civicbus.service import run_service

run_service("notify")
