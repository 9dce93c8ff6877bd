"""The workbench (工单处置工作台) in a real browser against the real stack: the closed loop as people work it.

Headless Chromium (Playwright driving the Debian /usr/bin/chromium, as the dashboard's test does — never a
downloaded browser) signs in as each kind of person, each in their own browser context (their own cookie), while
intake, triage and reporting (its workbench configured) run in this process on the real broker and
store:

- 张伟, 承办人 of 劳动保障所, sees a wage-arrears complaint (欠薪) appear in 待签收 without reloading the page, signs
  for it, is refused an extension to a date before the deadline (the state machine's Chinese reason shown, nothing
  changed), then asks for a week more;
- 郑秀英, the leader in charge of 劳动保障所, approves the extension from 延期待审批;
- 张伟 resolves the ticket with a photo (a PNG made here), served back to the page, and the amount recovered;
- 王芳, 派单员 of 综治中心, assigns a complaint no rule could place (人工派单) to a lead and an assisting unit;
- 徐丽, 回访员, records 满意 and the ticket closes.

The timelines name each person with their unit, and reporting's figures (``/v1/summary``, filtered to this test's
source) counted both tickets, the resolution and the satisfied callback. A second test works the account admin
pages (create, disable, reset, API keys) and the password change. Every page is saved at desktop (1280 px) and
phone (375 px) width in tests/artifacts/workbench/, and at phone width no page is wider than the screen.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.reporting.workbench.accounts import AccountStore, checked_account

from .browser import CHROMIUM, needs_chromium, watched_page
from .conftest import RunningService, eventually

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "workbench"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
SOURCE = f"workbench.{uuid.uuid4().hex[:8]}"  # this test's complaints, so the figures can be read for them alone
PASSWORD = "workbench-test-2026"
# username, display name, role, unit or leader (the district's sample configuration)
PEOPLE = {
    "staff": ("zhangwei", "张伟", "staff", {"unit": "laobao"}),
    "dispatcher": ("wangfang", "王芳", "dispatcher", {}),
    "leader": ("zhengxiuying", "郑秀英", "leader", {"leader": "zhengxiuying"}),
    "callback": ("xuli", "徐丽", "callback", {}),
    "admin": ("admin", "李管理", "admin", {}),
}
WAGES = "工地老板拖欠农民工工资两个月，要求帮忙讨薪"  # routed to 劳动保障所 (劳资纠纷-欠薪)
UNPLACEABLE = "今天天气怎么样"  # no rule claims it: 人工派单


def png(width: int = 96, height: int = 64) -> bytes:
    """A small real PNG (a colour gradient), as a phone's photo stands in for."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 150)) for x in range(width))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def workbench(services) -> RunningService:
    """The session's reporting, whose workbench has a ``workbench`` intake key and intake's address (conftest)."""
    return services["reporting"]


@pytest.fixture(scope="module")
async def people(services, mongo) -> dict[str, str]:
    """The accounts, made through the workbench's account store (as ``civicbus workbench add-account`` does)."""
    district = services["reporting"].app.state.runtime.district
    store = AccountStore(mongo)
    for username, name, role, where in PEOPLE.values():
        await store.create(checked_account(district, username, name, role, **where), PASSWORD)
    return {person: username for person, (username, *_) in PEOPLE.items()}


@pytest.fixture(scope="module")
async def browser():
    from playwright.async_api import async_playwright, expect

    # The page answers within a second or two; on a loaded 2-core machine a sign-in (Argon2) and a round through
    # intake, triage and reporting take longer than Playwright's 5 s default.
    expect.set_options(timeout=30_000)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        await chromium.close()


class Person:
    """One person at their own browser (own context, own session cookie), watched for script errors and CSP
    violations."""

    def __init__(self, page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors

    @classmethod
    async def open(cls, browser, base_url: str) -> Person:
        # The browser keeps London time: the page must still show the district's (Asia/Shanghai).
        context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Europe/London",
                                            base_url=base_url)
        page, errors = await watched_page(context)
        await page.goto("/workbench")
        await page.locator("#login-form").wait_for()
        return cls(page, errors)

    @classmethod
    async def signed_in(cls, browser, base_url: str, username: str) -> Person:
        person = await cls.open(browser, base_url)
        await person.sign_in(username)
        return person

    async def finds_in_tab(self, tab: str, ticket_id: str, snapshot: str) -> None:
        """The ticket listed in ``tab`` (the list saved as ``snapshot``), then opened."""
        await self.tickets(tab)
        await self.row(ticket_id)
        await self.snapshot(snapshot)
        await self.open_ticket(ticket_id)

    async def sign_in(self, username: str, password: str = PASSWORD) -> None:
        page = self.page
        await page.fill("#login-username", username)
        await page.fill("#login-password", password)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_function("() => document.body.dataset.view !== 'login'")

    async def tickets(self, tab: str | None = None) -> None:
        """The list view, on ``tab`` (the role's first tab if None), once loaded."""
        page = self.page
        if await page.evaluate("document.body.dataset.view") != "tickets":
            await page.click('[data-nav="tickets"]')
        if tab is not None:
            await page.locator(f'#tabs button[data-tab="{tab}"]').click()
            await page.locator(f'#tabs button[data-tab="{tab}"].active').wait_for()
        loads = int(await page.evaluate("document.body.dataset.loads"))
        await page.wait_for_function(f"() => Number(document.body.dataset.loads) > {loads}")

    async def row(self, ticket_id: str, timeout: float = 60_000):
        """The ticket's row in the list shown, once the page's own polling brought it (no reload)."""
        row = self.page.locator(f'#ticket-list li[data-ticket="{ticket_id}"]')
        await row.wait_for(timeout=timeout)
        return row

    async def open_ticket(self, ticket_id: str) -> None:
        await (await self.row(ticket_id)).locator("a").click()
        await self.page.locator("#t-head h2").wait_for()

    async def action(self, action: str, timeout: float = 60_000):
        """The form of one of the ticket's actions, once the page offers it (the detail refreshes by itself)."""
        await self.page.locator(f'#t-action-buttons button[data-action="{action}"]').click(timeout=timeout)
        form = self.page.locator(f'form[data-form="{action}"]')
        await form.wait_for()
        return form

    async def state_is(self, state: str, timeout: float = 60_000) -> None:
        await self.page.locator(f"#t-head .state-{state}").wait_for(timeout=timeout)

    async def snapshot(self, name: str) -> None:
        """The page at desktop and at phone width; at phone width nothing may be wider than the screen."""
        page = self.page
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            await page.set_viewport_size(size)
            await page.wait_for_timeout(200)
            await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
            if label == "phone":
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name}: {width} px wide on a {PHONE['width']} px phone"
        await page.set_viewport_size(DESKTOP)

    async def check_clean(self) -> None:
        assert await self.page.evaluate("window.cspViolations") == []
        assert not self.errors, self.errors

    async def close(self) -> None:
        await self.page.context.close()


async def _submit(http, services, content: str) -> str:
    """A complaint through intake's API, as the 12345 platform sends one; the id of the ticket triage made."""
    response = await http.post(f"{services['intake'].base_url}/v1/complaints",
                               json={"content": content, "source": SOURCE, "caller_phone": "13800138000"})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    return await eventually(lambda: _ticket_id(services, event_id), what=f"the ticket of “{content}”")


async def _ticket_id(services, event_id: str) -> str | None:
    db = services["triage"].app.state.runtime.db
    ticket = await db["tickets"].find_one({"source_event_id": event_id}, projection={"_id": 1})
    return ticket and ticket["_id"]


async def _summary(http, services) -> dict:
    response = await http.get(f"{services['reporting'].base_url}/v1/summary",
                              params={"period": "day", "source": SOURCE})
    assert response.status_code == 200, response.text
    return response.json()


def _entries(timeline: list[dict], kind: str) -> list[str]:
    return [entry["actor"] for entry in timeline if entry["kind"] == kind]


@needs_chromium
@pytest.mark.timeout(600)
async def test_people_close_the_loop_in_the_browser(workbench, people, browser, http, services, mongo):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = await _summary(http, services)
    assert before["counts"].get("created", 0) == 0, "this test's source is its own"
    staff = await Person.open(browser, workbench.base_url)
    page = staff.page
    served = await page.request.get("/workbench")
    assert "script-src 'self';" in served.headers["content-security-policy"], "no inline script, no CDN"
    assert await page.title() == "示范街道工单处置工作台"
    await staff.snapshot("login")

    # A wrong password is refused in Chinese; the right one signs in, on the role's first tab (待签收).
    await page.fill("#login-username", people["staff"])
    await page.fill("#login-password", "not-the-password")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
    await staff.sign_in(people["staff"])
    await expect(page.locator("#person-name")).to_have_text("张伟")
    await expect(page.locator("#person-unit")).to_have_text("劳动保障所")
    await staff.tickets()
    assert await page.locator("#tabs button.active").get_attribute("data-tab") == "pending_sign"

    # A new complaint appears in 待签收 without a reload, and the tab's count follows.
    await page.evaluate("window.notReloaded = true")
    count = int(await page.locator('#tabs button[data-tab="pending_sign"]').get_attribute("data-count"))
    wages = await _submit(http, services, f"{WAGES}（{SOURCE}）")
    await staff.row(wages)
    assert await page.evaluate("window.notReloaded") is True
    assert int(await page.locator('#tabs button[data-tab="pending_sign"]').get_attribute("data-count")) >= count + 1
    await staff.snapshot("staff-list")

    # The detail: why it came here, the caller's phone (the lead unit calls back), and only what 待签收 allows.
    await staff.open_ticket(wages)
    await expect(page.locator("#t-explanation")).to_contain_text("劳资纠纷")
    await expect(page.locator("#t-facts")).to_contain_text("13800138000")
    offered = await page.locator("#t-action-buttons button").evaluate_all("buttons => buttons.map(b => b.dataset.action)")
    assert "sign_for" in offered and "resolve" not in offered and "record_callback" not in offered, offered
    await staff.snapshot("staff-ticket")

    form = await staff.action("sign_for")
    await form.locator("textarea[name=note]").fill("已安排劳动监察员对接")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#flash")).to_contain_text("签收")
    await staff.state_is("acknowledged")

    # Refused: an extension to a date before the deadline. The state machine's reason is shown; nothing changed.
    stored = await mongo["tickets"].find_one({"_id": wages})
    form = await staff.action("request_extension")
    await form.locator("input[name=until_day]").fill(datetime.now(SHANGHAI).date().isoformat())
    await form.locator("input[name=until_time]").fill("08:00")
    await form.locator("textarea[name=note]").fill("需协调住建部门核实工程款")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".form-error")).to_contain_text("延期时间须晚于现办结时限")
    await staff.snapshot("staff-refused")
    unchanged = await mongo["tickets"].find_one({"_id": wages})
    assert unchanged["pending_extension"] is None and unchanged["resolve_due"] == stored["resolve_due"]

    # The same form, a week past the deadline: the request stands, awaiting the leader.
    later = stored["resolve_due"].astimezone(SHANGHAI) + timedelta(days=7)
    await form.locator("input[name=until_day]").fill(later.date().isoformat())
    await form.locator("input[name=until_time]").fill("17:30")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#t-extension")).to_contain_text(f"{later:%Y-%m-%d} 17:30", timeout=60_000)

    # The leader in charge of 劳动保障所 approves it from 延期待审批.
    leader = await Person.signed_in(browser, workbench.base_url, people["leader"])
    await leader.finds_in_tab("extensions", wages, snapshot="leader-list")
    form = await leader.action("decide_extension")
    await form.locator('input[name=grant][value="true"]').check()
    await form.locator("textarea[name=note]").fill("同意，请按期办结")
    await leader.snapshot("leader-ticket")
    await form.locator("button[type=submit]").click()
    await expect(leader.page.locator("#t-extension")).to_have_count(0, timeout=60_000)
    await expect(leader.page.locator("#t-facts")).to_contain_text(f"{later:%Y-%m-%d} 17:30", timeout=60_000)

    # 张伟 resolves it with a photo and the amount recovered; the photo is served back to the page.
    form = await staff.action("resolve")
    await form.locator("textarea[name=result]").fill("已约谈企业负责人，工资已全部发放到位")
    await form.locator("input[type=file]").set_input_files(
        files=[{"name": "现场照片.png", "mimeType": "image/png", "buffer": png()}])
    await form.locator(".uploads li.uploaded").wait_for()
    await form.locator("input[name=amount_recovered]").fill("32000")
    await staff.snapshot("staff-resolve")
    await form.locator("button[type=submit]").click()
    await staff.state_is("resolved")
    photo = page.locator("#t-progress .attachments img")
    await photo.wait_for(timeout=60_000)
    await page.wait_for_function("() => document.querySelector('#t-progress .attachments img').naturalWidth === 96")
    await expect(page.locator("#t-facts")).to_contain_text("32,000 元")

    # The dispatcher assigns a complaint no rule could place, with an assisting unit.
    manual = await _submit(http, services, f"{UNPLACEABLE}（{SOURCE}）")
    dispatcher = await Person.signed_in(browser, workbench.base_url, people["dispatcher"])
    await dispatcher.finds_in_tab("manual", manual, snapshot="dispatcher-list")
    await expect(dispatcher.page.locator("#t-explanation")).to_contain_text("人工派单")
    form = await dispatcher.action("assign")
    await form.locator("select[name=unit]").select_option("shiwu")
    await form.locator('input[name=assist_units][value="xinghe"]').check()
    await form.locator("textarea[name=note]").fill("属民生事务，请社会事务办牵头")
    await dispatcher.snapshot("dispatcher-assign")
    await form.locator("button[type=submit]").click()
    await dispatcher.state_is("routed")
    await expect(dispatcher.page.locator("#t-facts")).to_contain_text("社会事务办公室")
    await expect(dispatcher.page.locator("#t-facts")).to_contain_text("星河社区")

    # Callback staff record 满意: the ticket closes.
    callback = await Person.signed_in(browser, workbench.base_url, people["callback"])
    await callback.finds_in_tab("callback", wages, snapshot="callback-list")
    form = await callback.action("record_callback")
    await form.locator('input[name=resolved][value="true"]').check()
    await form.locator('input[name=satisfaction][value="satisfied"]').check()
    await form.locator("textarea[name=note]").fill("群众表示工资已到账，满意")
    await callback.snapshot("callback-form")
    await form.locator("button[type=submit]").click()
    await callback.state_is("closed")
    await expect(callback.page.locator("#t-action-buttons button")).to_have_count(0)  # nothing left to do
    await callback.page.locator('#t-timeline li[data-kind="ticket.callback_recorded"]').wait_for(timeout=60_000)
    await callback.snapshot("callback-closed")

    # Each timeline names the people who acted, with their unit, as the page shows it and as stored.
    shown = await callback.page.locator("#t-timeline li.entry").evaluate_all(
        "entries => entries.map(entry => ({kind: entry.dataset.kind, actor: entry.querySelector('.actor').textContent}))")
    assert _entries(shown, "ticket.acknowledged") == ["张伟（劳动保障所）"]
    assert _entries(shown, "ticket.command_refused") == ["张伟（劳动保障所）"]
    assert _entries(shown, "ticket.extension_requested") == ["张伟（劳动保障所）"]
    assert _entries(shown, "ticket.extension_decided") == ["郑秀英（领导）"]
    assert _entries(shown, "ticket.resolved") == ["张伟（劳动保障所）"]
    assert _entries(shown, "ticket.callback_recorded") == ["徐丽（平安办（综治中心））"]
    view = await mongo["ticket_views"].find_one({"_id": manual})
    assert _entries(view["timeline"], "ticket.reassigned") == ["王芳（平安办（综治中心））"]
    closed = await mongo["tickets"].find_one({"_id": wages})
    assert closed["amount_recovered"] == 32000 and len(closed["attachments"]) == 1
    assert closed["attachments"][0].startswith(f"{workbench.base_url}/workbench/api/files/")

    # The dashboard's figures moved: both tickets, the resolution and the satisfied callback are counted.
    async def counted() -> dict | None:
        counts = (await _summary(http, services))["counts"]
        return counts if counts.get("closed", 0) >= 1 else None

    counts = await eventually(counted, what="the closed ticket in reporting's figures")
    assert counts["created"] == 2 and counts["manual"] == 1
    assert counts["resolved"] == 1 and counts["callbacks"] == 1 and counts["satisfied"] == 1

    for person in (staff, leader, dispatcher, callback):
        await person.check_clean()
        await person.close()


@needs_chromium
async def test_accounts_keys_and_passwords_in_the_browser(workbench, people, browser):
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin = await Person.open(browser, workbench.base_url)
    page = admin.page
    await admin.sign_in(people["admin"])
    await page.click('[data-nav="accounts"]')
    table = page.locator("#accounts-table tbody")
    await expect(table.locator('tr[data-account="zhangwei"]')).to_contain_text("劳动保障所")

    # A new 承办人 of 西溪村.
    form = page.locator("#account-form")
    await form.locator("input[name=username]").fill("chenjing")
    await form.locator("input[name=name]").fill("陈静")
    await form.locator("select[name=role]").select_option("staff")
    await form.locator("select[name=unit]").select_option("xixi")
    await form.locator("input[name=password]").fill("chenjing-first-2026")
    await form.locator("button[type=submit]").click()
    row = table.locator('tr[data-account="chenjing"]')
    await expect(row).to_contain_text("陈静")
    await expect(row).to_contain_text("西溪村")

    # A leader's account: the leader chosen from the district's leaders, not typed.
    await form.locator("input[name=username]").fill("chenlixin")
    await form.locator("input[name=name]").fill("陈立新")
    await form.locator("select[name=role]").select_option("leader")
    await expect(form.locator("select[name=leader] option[value=chenlixin]")).to_have_count(1)
    await form.locator("select[name=leader]").select_option("chenlixin")
    await form.locator("input[name=password]").fill("chenlixin-first-2026")
    await form.locator("button[type=submit]").click()
    await expect(table.locator('tr[data-account="chenlixin"]')).to_contain_text("党工委副书记")

    # Her password reset, then her account disabled: she cannot sign in, and is told why.
    await row.locator('button[data-do="reset"]').click()
    await page.locator("#reset-form input[name=password]").fill("chenjing-reset-2026")
    await page.click("#reset-form button[type=submit]")
    await expect(page.locator("#flash")).to_contain_text("已重置")
    page.once("dialog", lambda dialog: dialog.accept())
    await row.locator('button[data-do="disable"]').click()
    await expect(row).to_contain_text("已停用")

    # An API key for a system: shown once, then revoked.
    keys = page.locator("#key-form")
    await keys.locator("input[name=name]").fill("西溪村网格系统")
    await keys.locator("select[name=role]").select_option("unit")
    await keys.locator("select[name=unit]").select_option("xixi")
    await keys.locator("button[type=submit]").click()
    await expect(page.locator("#new-key-value")).to_contain_text("cbk_")
    key_row = page.locator("#keys-table tbody tr", has_text="西溪村网格系统")
    await expect(key_row).to_contain_text("有效")
    await admin.snapshot("admin-accounts")
    page.once("dialog", lambda dialog: dialog.accept())
    await key_row.locator("button").click()
    await expect(key_row).to_contain_text("已吊销")

    # The admin changes their own password, signs out, and signs in with the new one.
    await page.click('[data-nav="password"]')
    password = page.locator("#password-form")
    await password.locator("input[name=current]").fill(PASSWORD)
    await password.locator("input[name=new]").fill("admin-new-2026")
    await password.locator("input[name=confirm]").fill("admin-new-2026")
    await admin.snapshot("password")
    await password.locator("button[type=submit]").click()
    await expect(page.locator("#flash")).to_contain_text("密码已修改")
    await page.click("#logout")
    await page.locator("#login-form").wait_for()
    await admin.sign_in(people["admin"], "admin-new-2026")
    await expect(page.locator("#person-role")).to_have_text("管理员")

    disabled = await Person.open(browser, workbench.base_url)
    await disabled.page.fill("#login-username", "chenjing")
    await disabled.page.fill("#login-password", "chenjing-reset-2026")
    await disabled.page.click("#login-form button[type=submit]")
    await expect(disabled.page.locator("#login-error")).to_contain_text("账号已停用")
    for person in (admin, disabled):
        await person.check_clean()
        await person.close()
