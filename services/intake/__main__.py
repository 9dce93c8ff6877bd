"""`python -m services.intake`: run the intake service (same as `civicbus run intake`)."""

from civicbus.service import run_service

run_service("intake")
