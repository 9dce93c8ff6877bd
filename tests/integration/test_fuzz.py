"""A fuzz run (issue 12): schemathesis generates requests from each service's OpenAPI document and none may be
answered with a server error. Bounded (a few examples per operation, no shrinking, no stored examples) so the run
stays within a minute or two; a 5xx that schemathesis finds is reported with the request that made it.

Schemathesis calls the API synchronously (requests), so it runs in a worker thread while the services answer on
the test's event loop. Service unavailable (503, the store or the broker away) is no bug and is not counted."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240),
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")]

EXAMPLES = 15


def _fuzz(base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation of the service at ``base_url``; the server errors found, each with its request."""
    schema = from_url(f"{base_url}/openapi.json")
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:  # noqa: ANN001 - a schemathesis Case
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            if response.status_code != 503:
                case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as error:  # the failure schemathesis reports, with a curl command to reproduce it
            found.append(f"{operation.label}: {error}")
    return found


@pytest.mark.parametrize("service", ["intake", "triage", "notify", "reporting"])
async def test_no_generated_request_gets_a_server_error(services, api_key, service):
    found = await asyncio.to_thread(_fuzz, services[service].base_url, {"X-API-Key": api_key})
    assert found == [], "\n\n".join(found)
