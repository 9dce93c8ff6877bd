"""What the browser tests share: Debian's Chromium (never a downloaded browser), the skip when it is missing, and a
page watched for script errors and Content-Security-Policy violations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Skipped on a developer's machine without Chromium; never in CI (CI=true), where a skip would hide the proof.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                                    reason="/usr/bin/chromium is missing (scripts/test.sh installs it as root)")
# Whatever the page's Content-Security-Policy blocks is recorded here. Waits are arrow functions: a bare expression
# would be eval'd in the page, which the policy forbids.
CSP_WATCH = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (event) => window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));"""


async def watched_page(context: Any) -> tuple[Any, list[str]]:
    """A new page of ``context`` and the list its script errors and CSP violations (both ways) are added to."""
    await context.add_init_script(CSP_WATCH)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    return page, errors
