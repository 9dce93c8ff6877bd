"""`python -m services.triage`: run the triage service (same as `civicbus run triage`)."""

from civicbus.service import run_service

run_service("triage")
