// 工单处置工作台: the workbench's pages in plain JavaScript — no framework, nothing from a CDN (the page's
// Content-Security-Policy runs only its own files, so there is no inline script either).
//
// One page holds every view: sign-in; the ticket lists of each role (tabs with their counts, a search, refreshed
// every few seconds so a new ticket appears without a reload); a ticket's detail with its timeline, the routing
// explanation (为何派给本单位) and a form for each action the API lists — only those; account admin; password
// change. The session is an HttpOnly cookie the page never reads. Every POST carries the session's CSRF token
// (X-CSRF-Token) and an X-Request-Id made once per user action, from which the server derives the command's id, so
// a double click is applied once. The state machine decides: a refused action shows the Chinese reason it gave,
// and the page changes nothing.
"use strict";

const API = "/workbench/api";
const HOME = "/workbench";
const timeZone = document.body.dataset.timezone || "Asia/Shanghai";
const pollSeconds = Math.max(2, Number(document.body.dataset.pollSeconds) || 5);

const TAB_NAMES = {
  pending_sign: "待签收", in_progress: "办理中", due_soon: "即将超期", overdue: "已超期", returned: "已退回",
  resolved: "已办结", manual: "人工派单", callback: "待回访", extensions: "延期待审批", supervision: "督办",
};
const HEADINGS = {staff: "我的工单", dispatcher: "派单工作台", callback: "回访工作台", leader: "延期审批与督办",
                  admin: "全部工单"};
const RETURN_REASONS = [["wrong_area", "属地不符"], ["unclear_ownership", "权属不清"],
                        ["overlapping_duties", "职能交叉"], ["other", "其他"]];
const SATISFACTION = [["satisfied", "满意"], ["basically_satisfied", "基本满意"], ["dissatisfied", "不满意"]];
const ACCOUNT_ROLES = [["staff", "承办人"], ["dispatcher", "派单员"], ["callback", "回访员"], ["leader", "领导"],
                       ["admin", "管理员"]];
const KEY_ROLES = [["system", "上游系统"], ["unit", "承办单位"], ["leader", "领导"], ["auditor", "审计（只读）"],
                   ["admin", "管理员"], ["open311", "Open311 客户端"], ["workbench", "工作台"]];
const UNIT_KINDS = {department: "科室", station: "站所", village: "村", community: "社区"};
const CATEGORY_METHODS = {upstream_code: "上游分类编码", alarm_type: "告警类型", inspection_type: "巡查类型",
                          keywords: "关键词规则", model: "学习模型", none: "未能分类"};
const LOCATION_METHODS = {polygon: "坐标位于辖区范围内", address: "地址关键词", none: "未能定位"};
const SEVERITY_NAMES = {low: "低", normal: "一般", high: "紧急", critical: "特急"};
const OVERDUE_NAMES = {sign_for: "超期未签收", resolve: "超期未办结"};
const ACCEPTED_FILES = "image/jpeg,image/png,image/webp,application/pdf";
const WAGE_ARREARS = "labor.wage_arrears";  // 欠薪: 办结 reports the amount recovered (追回金额)

const state = {
  person: null,
  csrf: "",
  tab: "",
  q: "",
  listSeq: 0,
  listBusy: 0,
  knownTickets: null,  // the ids of the list last shown, to mark what is new
  ticketId: "",
  ticket: null,
  ticketSeq: 0,
  actionKeys: null,  // the actions the buttons show (JSON), null when they must be drawn again
  openAction: null,  // {action, name, requestId, files: [ids], uploading}
  units: null,
};

// ------------------------------------------------------------------------------------------------ small helpers

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function newRequestId() {  // a UUID v4; crypto.randomUUID exists only in secure contexts, getRandomValues everywhere
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const WALL_CLOCK = new Intl.DateTimeFormat("en-US", {
  timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  second: "2-digit"});

function wallClock(instant) {  // the district's calendar and clock at an instant, whatever the browser's zone
  return Object.fromEntries(WALL_CLOCK.formatToParts(instant).map((part) => [part.type, part.value]));
}

function when(iso, withYear = true) {
  if (!iso) return "—";
  const parts = wallClock(new Date(iso));
  const day = withYear ? `${parts.year}-${parts.month}-${parts.day}` : `${parts.month}-${parts.day}`;
  return `${day} ${parts.hour}:${parts.minute}`;
}

function clockNow() {
  const parts = wallClock(new Date());
  return `${parts.hour}:${parts.minute}:${parts.second}`;
}

function districtMoment(day, time) {
  // "2026-12-10" and "17:30" as the district reads them → ISO 8601 with the district's offset at that moment.
  const [year, month, date] = day.split("-").map(Number);
  const [hour, minute] = time.split(":").map(Number);
  const guess = Date.UTC(year, month - 1, date, hour, minute);
  const parts = wallClock(new Date(guess));
  const shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute);
  const offset = Math.round((shown - guess) / 60000);  // minutes east of UTC
  const sign = offset < 0 ? "-" : "+";
  const pad = (number) => String(Math.abs(number)).padStart(2, "0");
  return `${day}T${pad(hour)}:${pad(minute)}:00${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}

function duration(milliseconds) {
  const minutes = Math.round(Math.abs(milliseconds) / 60000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return `${days}天${hours}小时`;
  if (hours) return `${hours}小时${minutes % 60}分`;
  return `${minutes}分钟`;
}

function remaining(iso) {
  if (!iso) return "";
  const left = new Date(iso) - Date.now();
  return left >= 0 ? `剩余${duration(left)}` : `已超时${duration(left)}`;
}

function fileSize(bytes) {
  if (bytes >= 1048576) return `${(bytes / 1048576).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

function unitName(id) {
  if (!id) return "";
  const unit = (state.units || []).find((candidate) => candidate.id === id);
  return unit ? unit.name : id;
}

function listOf(answer, ...names) {  // an array, or the array under one of ``names``
  if (Array.isArray(answer)) return answer;
  for (const name of names) if (answer && Array.isArray(answer[name])) return answer[name];
  return [];
}

// ------------------------------------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function explainFailure(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {  // FastAPI's 422: which fields were refused
    const fields = detail.map((item) => (item.loc || []).filter((part) => part !== "body").join(".")).filter(Boolean);
    return `提交的内容不完整或格式有误${fields.length ? `（${fields.join("、")}）` : ""}`;
  }
  if (body && body.message) return body.message;
  if (status === 413) return "文件过大";
  if (status === 415) return "不支持的文件类型";
  if (status === 429) return "操作过于频繁，请稍后再试";
  if (status >= 500) return `服务暂时不可用（${status}），请稍后重试`;
  return `请求失败（${status}）`;
}

async function api(path, {method = "GET", json, form, requestId} = {}) {
  const headers = {Accept: "application/json"};
  let payload;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (form) {
    payload = form;  // multipart: the browser sets the boundary
  }
  if (method !== "GET") {
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    headers["X-Request-Id"] = requestId || newRequestId();
  }
  let response;
  try {
    response = await fetch(API + path, {method, headers, body: payload, credentials: "same-origin", cache: "no-store"});
  } catch (_) {
    throw new ApiError(0, "网络连接失败，请检查网络后重试", null);
  }
  let body = null;
  if (response.status !== 204) {
    try { body = await response.json(); } catch (_) { /* not JSON */ }
  }
  if (response.status === 401 && path !== "/login" && path !== "/me" && state.person) {
    signedOut("登录已过期，请重新登录。");
  }
  if (!response.ok) throw new ApiError(response.status, explainFailure(response.status, body), body);
  return {status: response.status, body};
}

async function ensureUnits() {
  if (state.units) return state.units;
  try {
    state.units = listOf((await api("/units")).body, "items", "units");
  } catch (_) {
    return [];  // names fall back to ids; asked again next time
  }
  return state.units;
}

// ------------------------------------------------------------------------------------------------ messages

let flashTimer = null;

function flash(message, tone = "ok") {
  const box = $("#flash");
  box.textContent = message;
  box.className = `flash ${tone}`;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

// ------------------------------------------------------------------------------------------------ views and routes

function showView(name) {
  for (const section of document.querySelectorAll("main > .view")) section.hidden = section.id !== `view-${name}`;
  document.body.dataset.view = name;
  for (const button of document.querySelectorAll("[data-nav]")) {
    button.classList.toggle("active", button.dataset.nav === name || (name === "ticket" && button.dataset.nav === "tickets"));
  }
  showError("");
}

function ticketUrl(id) { return `${HOME}/tickets/${encodeURIComponent(id)}`; }

function go(url) {
  history.pushState(null, "", url);
  route();
}

function route() {
  if (!state.person) { showLogin(); return; }
  const match = /^\/workbench\/tickets\/([^/]+)\/?$/.exec(location.pathname);
  const params = new URLSearchParams(location.search);
  if (match) { openTicket(decodeURIComponent(match[1])); return; }
  const view = params.get("view");
  if (view === "accounts" && state.person.role === "admin") { openAccounts(); return; }
  if (view === "password") { showView("password"); return; }
  state.tab = params.get("tab") || state.tab;
  state.q = params.get("q") || "";
  openTickets();
}

function followLink(event) {  // links inside the page open their view without a reload (a middle click still opens a tab)
  const link = event.target.closest("a[href]");
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(HOME) || url.pathname.startsWith(API)) return;
  event.preventDefault();
  go(url.pathname + url.search);
}

// ------------------------------------------------------------------------------------------------ signing in and out

function showLogin(message) {
  state.person = null;
  state.csrf = "";
  document.body.dataset.role = "";
  $("#whoami").hidden = true;
  $("#nav").hidden = true;
  showView("login");
  const error = $("#login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("#login-username").focus();
}

function signedOut(message) {
  closeAction();
  state.units = null;
  showLogin(message);
}

function setPerson(me) {
  state.person = me;
  state.csrf = me.csrf_token || state.csrf;
  document.body.dataset.role = me.role;
  $("#person-name").textContent = me.name;
  $("#person-role").textContent = me.role_name || me.role;
  $("#person-unit").textContent = me.unit_name || "";
  $("#whoami").hidden = false;
  $("#nav").hidden = false;
  $('[data-nav="accounts"]').hidden = me.role !== "admin";
  $('[data-nav="tickets"]').textContent = HEADINGS[me.role] || "我的工单";
}

async function whoAmI() {
  try {
    setPerson((await api("/me")).body);
    return true;
  } catch (failure) {
    if (failure.status !== 401) showLogin(`无法连接工作台：${failure.message}`);
    return false;
  }
}

async function signIn(event) {
  event.preventDefault();
  const button = event.submitter || $("#login-form button[type=submit]");
  const error = $("#login-error");
  error.hidden = true;
  button.disabled = true;
  try {
    const {body} = await api("/login", {method: "POST", json: {
      username: $("#login-username").value.trim(), password: $("#login-password").value}});
    state.csrf = body.csrf_token || "";
    $("#login-password").value = "";
    if (await whoAmI()) {
      state.tab = "";
      state.knownTickets = null;
      route();
    }
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api("/logout", {method: "POST"});
  } catch (_) { /* the session may be gone already */ }
  history.pushState(null, "", HOME);
  signedOut("已退出登录。");
}

// ------------------------------------------------------------------------------------------------ ticket lists

function openTickets() {
  closeAction();
  state.ticketId = "";
  showView("tickets");
  $("#list-heading").textContent = HEADINGS[state.person.role] || "我的工单";
  $("#search").value = state.q;
  loadTickets();
}

function listAddress() {
  const params = new URLSearchParams();
  if (state.tab) params.set("tab", state.tab);
  if (state.q) params.set("q", state.q);
  const query = params.toString();
  return query ? `${HOME}?${query}` : HOME;
}

async function loadTickets() {
  const seq = ++state.listSeq;
  state.listBusy += 1;
  try {
    const params = new URLSearchParams();
    if (state.tab) params.set("tab", state.tab);
    if (state.q) params.set("q", state.q);
    let {body} = await api(`/tickets?${params}`);
    const tabs = Object.keys(body.tabs || {});
    if (tabs.length && !tabs.includes(state.tab)) {  // first visit, or a tab this role does not have
      state.tab = tabs[0];
      params.set("tab", state.tab);
      ({body} = await api(`/tickets?${params}`));
    }
    if (seq !== state.listSeq || document.body.dataset.view !== "tickets") return;
    history.replaceState(null, "", listAddress());
    renderTabs(body.tabs || {}, body.tab_names || {});
    renderList(body.items || []);
    document.body.dataset.loads = Number(document.body.dataset.loads || 0) + 1;
    $("#list-status").textContent =
      `${TAB_NAMES[state.tab] || state.tab}${state.q ? `（搜索“${state.q}”）` : ""}共 ${(body.items || []).length} 件 · `
      + `更新于 ${clockNow()}，每${pollSeconds}秒自动刷新`;
    showError("");
  } catch (failure) {
    if (seq === state.listSeq && failure.status !== 401) showError(`工单列表加载失败：${failure.message}（将自动重试）`);
  } finally {
    state.listBusy -= 1;
  }
}

function renderTabs(tabs, names) {
  const buttons = Object.entries(tabs).map(([tab, count]) =>
    element("button", {type: "button", role: "tab", className: tab === state.tab ? "tab active" : "tab",
                       "aria-selected": tab === state.tab ? "true" : "false", dataset: {tab, count},
                       onclick: () => selectTab(tab)},
            names[tab] || TAB_NAMES[tab] || tab, element("span", {className: "count"}, count)));
  $("#tabs").replaceChildren(...buttons);
}

function selectTab(tab) {
  if (tab === state.tab) return;
  state.tab = tab;
  state.knownTickets = null;
  $("#ticket-list").replaceChildren();
  history.pushState(null, "", listAddress());
  loadTickets();
}

function stateBadge(stateCode, name) {
  return element("span", {className: `state state-${stateCode}`}, name || stateCode);
}

function overdueBadges(overdue) {
  return (overdue || []).map((deadline) => element("span", {className: "badge late"}, OVERDUE_NAMES[deadline] || deadline));
}

function deadlineLine(item) {
  if (item.state === "routed") return [`签收时限 ${when(item.sign_due, false)}`, ` · ${remaining(item.sign_due)}`];
  if (item.state === "acknowledged") return [`办结时限 ${when(item.resolve_due, false)}`, ` · ${remaining(item.resolve_due)}`];
  return [`受理于 ${when(item.created_at, false)}`];
}

function renderList(items) {
  const known = state.knownTickets;
  const rows = items.map((item) => {
    const assist = (item.assist_units || []).map(unitName).join("、");
    const isNew = known !== null && !known.has(item.ticket_id);
    return element("li", {className: `ticket${isNew ? " new" : ""}${(item.overdue || []).length ? " late" : ""}`,
                          dataset: {ticket: item.ticket_id, state: item.state}},
      element("a", {href: ticketUrl(item.ticket_id)},
        element("div", {className: "line"},
                element("span", {className: "title"}, item.title || "（无标题）"),
                stateBadge(item.state, item.state_name), overdueBadges(item.overdue)),
        element("div", {className: "meta"},
                element("span", {className: "number"}, item.ticket_id),
                element("span", {}, item.category_name || item.category || ""),
                element("span", {}, item.area_name || "属地未知")),
        element("div", {className: "meta"},
                element("span", {}, `主办：${item.lead_unit_name || unitName(item.lead_unit) || "待派单"}`),
                assist ? element("span", {}, `协办：${assist}`) : null),
        element("div", {className: "due"}, ...deadlineLine(item))));
  });
  if (!rows.length) rows.push(element("li", {className: "empty"}, state.q ? "没有符合搜索条件的工单" : "暂无工单"));
  $("#ticket-list").replaceChildren(...rows);
  state.knownTickets = new Set(items.map((item) => item.ticket_id));
}

function search(event) {
  event.preventDefault();
  state.q = $("#search").value.trim();
  state.knownTickets = null;
  history.pushState(null, "", listAddress());
  loadTickets();
}

// ------------------------------------------------------------------------------------------------ a ticket

function openTicket(id) {
  showView("ticket");
  if (state.ticketId !== id) {
    closeAction();
    state.ticketId = id;
    state.ticket = null;
    state.actionKeys = null;
    $("#ticket-detail").replaceChildren(element("p", {className: "muted"}, "加载中…"));
  }
  ensureUnits().then(loadTicket);
}

async function loadTicket() {
  const id = state.ticketId;
  const seq = ++state.ticketSeq;
  try {
    const {body} = await api(`/tickets/${encodeURIComponent(id)}`);
    if (seq !== state.ticketSeq || state.ticketId !== id || document.body.dataset.view !== "ticket") return;
    renderTicket(body);
    document.body.dataset.ticketLoads = Number(document.body.dataset.ticketLoads || 0) + 1;
  } catch (failure) {
    if (seq !== state.ticketSeq || failure.status === 401) return;
    if (failure.status === 404) {
      closeAction();
      state.ticket = null;
      $("#ticket-detail").replaceChildren(element("div", {className: "card empty"},
        element("h2", {}, "工单不存在"), element("p", {}, `没有找到工单 ${id}，或它不属于您所在的单位。`)));
    } else {
      showError(`工单加载失败：${failure.message}（将自动重试）`);
    }
  }
}

function refreshSoon() {  // the read model follows the command by a moment: look again shortly
  for (const delay of [400, 1200, 2500, 4500]) setTimeout(() => { if (state.ticketId) loadTicket(); }, delay);
}

function section(id, title, ...children) {
  return element("section", {id, className: "card"}, title ? element("h3", {}, title) : null, ...children);
}

function facts(pairs) {
  return element("dl", {className: "facts"}, pairs.filter(([, value]) => value !== "" && value !== null && value !== undefined)
    .map(([name, value]) => [element("dt", {}, name), element("dd", {}, value)]));
}

function skeleton() {
  const detail = element("article", {className: "ticket-detail"},
    element("header", {id: "t-head", className: "detail-head"}),
    element("div", {className: "detail-grid"},
      element("div", {className: "col-main"},
        section("t-actions", "办理操作", element("div", {id: "t-action-buttons", className: "action-buttons"}),
                element("div", {id: "t-action-form"})),
        section("t-facts", "工单信息"),
        section("t-progress", "办理情况")),
      element("div", {className: "col-side"},
        section("t-explanation", "为何派给本单位"),
        section("t-timeline", "流转记录"))));
  $("#ticket-detail").replaceChildren(detail);
}

function renderTicket(ticket) {
  if (!state.ticket || state.ticket.ticket_id !== ticket.ticket_id || !$("#t-head")) skeleton();
  state.ticket = ticket;
  const overdue = overdueBadges(ticket.overdue);
  $("#t-head").replaceChildren(
    element("h2", {}, ticket.title || "（无标题）"),
    element("div", {className: "line"}, stateBadge(ticket.state, ticket.state_name), overdue,
            ticket.supervision_count ? element("span", {className: "badge warn"}, `督办${ticket.supervision_count}次`) : null,
            ticket.pending_extension ? element("span", {className: "badge warn"}, "延期待审批") : null,
            element("span", {className: "number"}, ticket.ticket_id)));
  renderFacts(ticket);
  renderProgress(ticket);
  renderExplanation(ticket);
  renderTimeline(ticket.timeline || []);
  renderActions(ticket.actions || []);
}

function renderFacts(ticket) {
  const assist = (ticket.assist_unit_names || (ticket.assist_units || []).map(unitName)).join("、");
  const amount = (value) => (value === null || value === undefined ? "" : `${Number(value).toLocaleString("zh-CN")} 元`);
  const running = ticket.state === "acknowledged" || ticket.state === "routed";  // its deadlines still count
  $("#t-facts").replaceChildren(element("h3", {}, "工单信息"),
    facts([
      ["类别", ticket.category_name || ticket.category],
      ["属地", ticket.area_name || "未知"],
      ["地址", ticket.address],
      ["主办单位", ticket.lead_unit_name || unitName(ticket.lead_unit) || "待人工派单"],
      ["协办单位", assist],
      ["分管领导", ticket.leader_name],
      ["紧急程度", SEVERITY_NAMES[ticket.severity] || ticket.severity],
      ["来源", ticket.event_source],
      ["来电号码", ticket.caller_phone],
      ["受理时间", when(ticket.created_at)],
      ["签收时限", ticket.sign_for_due || ticket.sign_due ? when(ticket.sign_for_due || ticket.sign_due) : ""],
      ["办结时限", ticket.resolve_due ? `${when(ticket.resolve_due)}${running ? `（${remaining(ticket.resolve_due)}）` : ""}` : ""],
      ["重复件", ticket.event_count > 1 ? `${ticket.event_count - 1} 件` : ""],
      ["涉及金额", amount(ticket.amount_involved)],
      ["追回金额", amount(ticket.amount_recovered)],
    ]),
    element("h4", {}, "诉求内容"),
    element("p", {className: "content"}, ticket.content || ""));
}

function attachmentList(attachments) {
  if (!attachments.length) return null;
  return element("ul", {className: "attachments"}, attachments.map((file) => {
    const url = `${API}/files/${encodeURIComponent(file.id)}`;  // same origin, whatever the public address is
    const image = (file.content_type || "").startsWith("image/");
    return element("li", {dataset: {file: file.id}},
      element("a", {href: url, target: "_blank", rel: "noopener"},
              image ? element("img", {src: url, alt: file.name || "照片", loading: "lazy"}) : null,
              element("span", {}, `${file.name || "附件"}${file.size ? `（${fileSize(file.size)}）` : ""}`)));
  }));
}

function renderProgress(ticket) {
  const parts = [];
  const pending = ticket.pending_extension;
  if (pending) {
    parts.push(element("div", {className: "notice warn", id: "t-extension"},
      element("strong", {}, "延期申请待审批"),
      ` 申请延期至 ${when(pending.until)}；理由：${pending.reason || "—"}；申请人：${pending.requested_by || "—"}`
      + `（${when(pending.requested_at)}）`));
  }
  if (ticket.resolution) {
    parts.push(element("div", {className: "resolution"}, element("h4", {}, "办结情况"), element("p", {}, ticket.resolution),
                       ticket.resolved_at ? element("p", {className: "muted"}, `办结于 ${when(ticket.resolved_at)}`) : null));
  }
  const callback = ticket.callback;
  if (callback) {
    const verdict = SATISFACTION.find(([code]) => code === callback.satisfaction);
    parts.push(element("div", {className: "callback"}, element("h4", {}, "回访结果"),
      element("p", {}, `${callback.resolved ? "问题已解决" : "问题未解决"}${verdict ? `，${verdict[1]}` : ""}`
                       + `${callback.note ? `：${callback.note}` : ""}（${when(callback.at)}）`)));
  }
  const files = attachmentList(ticket.attachments || []);
  if (files) parts.push(element("h4", {}, "附件与照片"), files);
  if (!parts.length) parts.push(element("p", {className: "muted"}, "尚无办理结果"));
  $("#t-progress").replaceChildren(element("h3", {}, "办理情况"), ...parts);
}

function percent(share) { return `${Math.round((share || 0) * 100)}%`; }

function renderExplanation(ticket) {
  const explanation = ticket.explanation;
  const box = $("#t-explanation");
  const heading = element("h3", {}, ticket.lead_unit ? "为何派给本单位" : "派单依据");
  if (!explanation) { box.replaceChildren(heading, element("p", {className: "muted"}, "无派单记录")); return; }
  const category = explanation.category || {};
  const location = explanation.location || {};
  const rows = [];
  if (explanation.manual_reason) {
    rows.push(element("div", {className: "notice warn"}, element("strong", {}, "人工派单原因："),
                      explanation.manual_reason));
  }
  const located = LOCATION_METHODS[location.method] || location.method || "—";
  rows.push(facts([
    ["派单规则", (explanation.route_path || []).join(" → ")],
    ["匹配条件", (explanation.matched || []).join("；")],
    ["定位依据", location.detail ? `${located}：${location.detail}` : located],
  ]));
  // The rules' answer and the model's side by side: what a dispatcher weighs for 人工派单.
  const rules = (category.keywords || []).length ? category.keywords.join("、") : "未命中关键词";
  const modelName = category.model_label === ticket.category ? ticket.category_name : category.model_label;
  const model = category.model_label ? `${modelName}（${percent(category.model_probability)}）` : "未调用";
  const basis = CATEGORY_METHODS[category.method] || category.method || "—";
  const chosen = `${ticket.category_name || ticket.category || "—"}（${basis}`
    + `${category.confidence ? `，置信度 ${percent(category.confidence)}` : ""}）`;
  const row = (source, name, value) => element("tr", {dataset: {source}}, element("td", {}, name),
                                               element("td", {}, value));
  rows.push(element("table", {className: "compare"},
    element("thead", {}, element("tr", {}, element("th", {}, "分类依据"), element("th", {}, "结果"))),
    element("tbody", {}, row("rules", "关键词规则", rules), row("model", "学习模型", model),
            row("chosen", "采用", chosen),
            category.runner_up ? row("runner_up", "次选类别", category.runner_up) : null)));
  box.replaceChildren(heading, ...rows);
}

function renderTimeline(timeline) {
  const entries = [...timeline].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const items = entries.map((entry) => element("li", {
    className: `entry${entry.refusal_code ? " refused" : ""}`, dataset: {kind: entry.kind, event: entry.event_id || ""}},
    element("div", {className: "when"}, when(entry.at)),
    element("div", {className: "what"}, element("strong", {}, entry.kind_name || entry.kind),
            element("span", {className: "actor"}, !entry.actor || entry.actor === "system" ? "系统" : entry.actor)),
    entry.note ? element("div", {className: "note"}, entry.note) : null));
  $("#t-timeline").replaceChildren(element("h3", {}, `流转记录（${entries.length}）`),
    items.length ? element("ol", {className: "timeline"}, items) : element("p", {className: "muted"}, "暂无记录"));
}

function renderActions(actions) {
  const keys = JSON.stringify(actions);
  if (keys === state.actionKeys) return;
  if (state.openAction) return;  // a form is being filled in: it stays; the state machine judges what is sent
  state.actionKeys = keys;
  const buttons = actions.map((item) => element("button", {
    type: "button", className: "action", dataset: {action: item.action}, onclick: () => openAction(item)}, item.name));
  $("#t-action-buttons").replaceChildren(...(buttons.length ? buttons
    : [element("p", {className: "muted"}, "当前状态下您没有可执行的操作")]));
}

// ------------------------------------------------------------------------------------------------ action forms

function field(label, control, hint) {
  return element("label", {className: "field"}, element("span", {className: "label"}, label), control,
                 hint ? element("small", {className: "hint"}, hint) : null);
}

function noteInput(name, required, placeholder) {
  return element("textarea", {name, rows: 3, maxlength: 2000, required, placeholder: placeholder || ""});
}

function radios(name, legend, options, required) {
  return element("fieldset", {className: "choices"}, element("legend", {}, legend),
    options.map(([value, label], index) => element("label", {className: "choice"},
      element("input", {type: "radio", name, value, required: required && index === 0}), label)));
}

function unitSelect(name, units, exclude = "", placeholder = "请选择单位") {
  const groups = Object.entries(UNIT_KINDS).map(([kind, title]) => {
    const members = units.filter((unit) => unit.kind === kind && unit.id !== exclude);
    return members.length ? element("optgroup", {label: title},
                                    members.map((unit) => element("option", {value: unit.id}, unit.name))) : null;
  });
  const others = units.filter((unit) => !UNIT_KINDS[unit.kind] && unit.id !== exclude);
  return element("select", {name, required: true},
                 element("option", {value: ""}, placeholder), groups,
                 others.map((unit) => element("option", {value: unit.id}, unit.name)));
}

function fileInput() {
  // The browser's own file button speaks the browser's language: a Chinese one stands in front of it.
  const input = element("input", {type: "file", name: "upload", accept: ACCEPTED_FILES, multiple: true,
                                  className: "visually-hidden"});
  const list = element("ul", {className: "uploads"});
  input.addEventListener("change", () => {
    for (const file of [...input.files]) upload(file, list);
    input.value = "";
  });
  return [element("div", {className: "field"}, element("span", {className: "label"}, "照片或附件"),
                  element("label", {className: "upload-button"}, input, "选择照片或文件"),
                  element("small", {className: "hint"}, "支持 JPG、PNG、WebP 图片和 PDF，可多选，拍照后直接上传")),
          list];
}

async function upload(file, list) {
  const action = state.openAction;
  const item = element("li", {className: "uploading"}, `${file.name}（${fileSize(file.size)}）上传中…`);
  list.append(item);
  action.uploading += 1;
  const form = new FormData();
  form.append("file", file);
  try {
    const {body} = await api(`/tickets/${encodeURIComponent(state.ticketId)}/files`, {method: "POST", form});
    if (state.openAction !== action) return;
    action.files.push(body.id);
    const url = `${API}/files/${encodeURIComponent(body.id)}`;
    item.className = "uploaded";
    item.dataset.file = body.id;
    item.replaceChildren(
      (body.content_type || "").startsWith("image/") ? element("img", {src: url, alt: body.name}) : null,
      element("span", {}, `${body.name || file.name}（${fileSize(body.size || file.size)}）已上传`),
      element("button", {type: "button", className: "link", onclick: () => {
        action.files = action.files.filter((id) => id !== body.id);
        item.remove();
      }}, "移除"));
  } catch (failure) {
    item.className = "failed";
    item.textContent = `${file.name}：${failure.message}`;
  } finally {
    action.uploading -= 1;
  }
}

function wageArrears(ticket) {
  return ticket.category === WAGE_ARREARS || (ticket.category_name || "").includes("欠薪");
}

function assignFields(units, ticket) {
  const lead = unitSelect("unit", units, "", "请选择主办单位");
  const assists = element("div", {className: "assist-units"}, Object.entries(UNIT_KINDS).map(([kind, title]) => {
    const members = units.filter((unit) => unit.kind === kind);
    return members.length ? element("fieldset", {}, element("legend", {}, title), members.map((unit) =>
      element("label", {className: "choice"},
              element("input", {type: "checkbox", name: "assist_units", value: unit.id,
                                checked: (ticket.assist_units || []).includes(unit.id)}), unit.name))) : null;
  }));
  lead.addEventListener("change", () => {  // the lead unit cannot assist itself
    for (const box of assists.querySelectorAll("input")) {
      box.disabled = box.value === lead.value;
      if (box.disabled) box.checked = false;
    }
  });
  return [field("主办单位", lead),
          element("div", {className: "field"}, element("span", {className: "label"}, "协办单位（可多选）"), assists),
          field("派单说明", noteInput("note", false, "选填"))];
}

const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
const text = (form, name) => (form.elements[name] ? form.elements[name].value.trim() : "");

// Each action: its fields, the submit button's words, and the body of POST …/actions/{action} (the contract's).
const FORMS = {
  sign_for: () => ({
    fields: [field("签收说明", noteInput("note", false, "选填，例如：已安排专人办理"))],
    submit: "确认签收",
    body: (form) => ({note: text(form, "note")}),
  }),
  return: () => ({
    fields: [field("退单原因", element("select", {name: "reason", required: true},
                                   element("option", {value: ""}, "请选择退单原因"),
                                   RETURN_REASONS.map(([code, name]) => element("option", {value: code}, name)))),
             field("退单说明", noteInput("note", false, "说明为何不属于本单位；原因为“其他”时必填"))],
    submit: "确认退单",
    body: (form) => ({reason: text(form, "reason"), note: text(form, "note")}),
  }),
  request_extension: (ticket) => ({
    fields: [element("p", {className: "hint"}, `现办结时限：${when(ticket.resolve_due)}`),
             element("div", {className: "row"},
                     field("延期至（日期）", element("input", {type: "date", name: "until_day", required: true})),
                     field("时间", element("input", {type: "time", name: "until_time", value: "17:30", required: true}))),
             field("延期理由", noteInput("note", true, "须说明延期理由"))],
    submit: "提交延期申请",
    body: (form) => ({until: districtMoment(text(form, "until_day"), text(form, "until_time") || "17:30"),
                      note: text(form, "note")}),
  }),
  add_note: () => ({
    fields: [field("办理进展", noteInput("note", true, "填写目前的办理情况")), ...fileInput()],
    submit: "提交进展",
    body: (form, action) => ({note: text(form, "note"), files: action.files}),
  }),
  assist_feedback: () => ({
    fields: [field("协办意见", noteInput("note", true, "填写本单位的协办意见")), ...fileInput()],
    submit: "提交协办意见",
    body: (form, action) => ({note: text(form, "note"), files: action.files}),
  }),
  resolve: (ticket) => ({
    fields: [field("办结情况", element("textarea", {name: "result", rows: 4, maxlength: 5000, required: true,
                                                  placeholder: "处理经过与结果"})),
             ...fileInput(),
             wageArrears(ticket) ? field("追回金额（元）", element("input", {type: "number", name: "amount_recovered",
                                                                          min: 0, step: "0.01", inputmode: "decimal"}),
                                         "欠薪工单请填写为劳动者追回的金额") : null],
    submit: "确认办结",
    body: (form, action) => {
      const body = {result: text(form, "result"), files: action.files};
      const amount = text(form, "amount_recovered");
      if (amount !== "") body.amount_recovered = Number(amount);
      return body;
    },
  }),
  record_callback: () => ({
    fields: [radios("resolved", "问题是否解决", [["true", "已解决"], ["false", "未解决"]], true),
             radios("satisfaction", "群众评价", SATISFACTION, false),
             field("回访记录", noteInput("note", false, "选填：群众的原话或补充说明"))],
    submit: "保存回访结果",
    body: (form) => {
      const [satisfaction] = checked(form, "satisfaction");
      return {resolved: checked(form, "resolved")[0] === "true", satisfaction: satisfaction || null,
              note: text(form, "note")};
    },
  }),
  decide_extension: (ticket) => ({
    fields: [ticket.pending_extension
               ? element("p", {className: "notice warn"}, `申请延期至 ${when(ticket.pending_extension.until)}，`
                         + `理由：${ticket.pending_extension.reason || "—"}（${ticket.pending_extension.requested_by || ""}）`)
               : null,
             radios("grant", "审批意见", [["true", "同意延期"], ["false", "不同意"]], true),
             field("审批说明", noteInput("note", false, "选填"))],
    submit: "提交审批",
    body: (form) => ({grant: checked(form, "grant")[0] === "true", note: text(form, "note")}),
  }),
  supervise: () => ({
    fields: [field("督办意见", noteInput("note", true, "例如：请于本周内办结并反馈"))],
    submit: "发出督办",
    body: (form) => ({note: text(form, "note")}),
  }),
  assign: (ticket, units) => ({
    fields: assignFields(units, ticket),
    submit: "确认派单",
    body: (form) => ({unit: text(form, "unit"), assist_units: checked(form, "assist_units"), note: text(form, "note")}),
  }),
  reassign: (ticket, units) => ({
    fields: assignFields(units, ticket),
    submit: "确认改派",
    body: (form) => ({unit: text(form, "unit"), assist_units: checked(form, "assist_units"), note: text(form, "note")}),
  }),
};

async function openAction(item) {
  const builder = FORMS[item.action];
  if (!builder || !state.ticket) return;
  const units = item.action === "assign" || item.action === "reassign" ? await ensureUnits() : [];
  const action = {action: item.action, name: item.name, requestId: newRequestId(), files: [], uploading: 0};
  state.openAction = action;
  const spec = builder(state.ticket, units);
  const error = element("p", {className: "form-error", role: "alert", hidden: true});
  const form = element("form", {className: "action-form", dataset: {form: item.action}},
    element("h4", {}, item.name), spec.fields, error,
    element("div", {className: "buttons"},
            element("button", {type: "submit", className: "primary"}, spec.submit),
            element("button", {type: "button", onclick: () => { closeAction(); renderActions(state.ticket.actions || []); }},
                    "取消")));
  form.addEventListener("submit", (event) => submitAction(event, form, spec, action, error));
  for (const button of document.querySelectorAll("#t-action-buttons button")) {
    button.classList.toggle("active", button.dataset.action === item.action);
  }
  $("#t-action-form").replaceChildren(form);
  const first = form.querySelector("input:not([type=hidden]), select, textarea");
  if (first) first.focus({preventScroll: true});
  form.scrollIntoView({block: "nearest"});
}

function closeAction() {
  state.openAction = null;
  state.actionKeys = null;
  const box = $("#t-action-form");
  if (box) box.replaceChildren();
}

async function submitAction(event, form, spec, action, error) {
  event.preventDefault();
  if (action.uploading) {
    error.textContent = "请等待附件上传完成后再提交";
    error.hidden = false;
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  error.hidden = true;
  const ticketId = state.ticketId;
  try {
    const {status, body} = await api(`/tickets/${encodeURIComponent(ticketId)}/actions/${action.action}`, {
      method: "POST", json: spec.body(form, action), requestId: action.requestId});
    if (state.openAction === action) closeAction();
    flash(status === 202 ? `${action.name}已提交，正在处理…` : (body && body.message) || `${action.name}成功`);
    refreshSoon();
    loadTicket();
  } catch (failure) {
    // Refused (409: the state machine's reason, nothing changed) or not accepted: the form stays as it was.
    error.textContent = failure.status === 409 ? `操作未执行：${failure.message}` : failure.message;
    error.hidden = false;
    form.dataset.refused = failure.body && failure.body.code ? failure.body.code : String(failure.status);
  } finally {
    button.disabled = false;
    action.requestId = newRequestId();  // what is sent next is another action (e.g. a corrected date)
  }
}

// ------------------------------------------------------------------------------------------------ accounts and keys

function openAccounts() {
  closeAction();
  state.ticketId = "";
  showView("accounts");
  ensureUnits().then((units) => {
    for (const select of document.querySelectorAll("select[data-units]")) {
      if (select.options.length > 1) continue;
      select.append(...units.map((unit) => element(
        "option", {value: unit.id}, `${unit.name}${UNIT_KINDS[unit.kind] ? `（${UNIT_KINDS[unit.kind]}）` : ""}`)));
    }
  });
  api("/leaders").then(({body}) => {
    const select = $("#account-leader");
    if (select.options.length > 1) return;
    select.append(...listOf(body, "items", "leaders").map((leader) => element(
      "option", {value: leader.id}, `${leader.name}（${leader.title}）`)));
  }).catch(() => {});  // the form says 请选择领导 and the server names a missing leader
  loadAccounts();
  loadKeys();
}

async function loadAccounts() {
  try {
    const accounts = listOf((await api("/accounts")).body, "items", "accounts");
    const rows = accounts.map((account) => element("tr", {dataset: {account: account.username},
                                                          className: account.disabled ? "disabled" : ""},
      element("td", {}, account.username), element("td", {}, account.name),
      element("td", {}, account.role_name || (ACCOUNT_ROLES.find(([code]) => code === account.role) || [, account.role])[1]),
      element("td", {}, account.unit_name || unitName(account.unit) || account.leader_name || account.leader || "—"),
      element("td", {}, account.disabled ? "已停用" : "正常"),
      element("td", {className: "row-actions"},
        element("button", {type: "button", dataset: {do: account.disabled ? "enable" : "disable"},
                           onclick: () => toggleAccount(account)}, account.disabled ? "启用" : "停用"),
        element("button", {type: "button", dataset: {do: "reset"}, onclick: () => askReset(account)}, "重置密码"))));
    $("#accounts-table tbody").replaceChildren(...(rows.length ? rows
      : [element("tr", {}, element("td", {colspan: 6, className: "empty"}, "暂无账号"))]));
  } catch (failure) {
    showError(`账号列表加载失败：${failure.message}`);
  }
}

async function toggleAccount(account) {
  const verb = account.disabled ? "enable" : "disable";
  if (!account.disabled && !confirm(`确定停用账号“${account.name}（${account.username}）”吗？停用后该账号立即无法登录。`)) return;
  try {
    await api(`/accounts/${encodeURIComponent(account.username)}/${verb}`, {method: "POST"});
    flash(`账号 ${account.username} 已${account.disabled ? "启用" : "停用"}`);
  } catch (failure) {
    flash(`操作失败：${failure.message}`, "bad");
  }
  loadAccounts();
}

function askReset(account) {
  const form = $("#reset-form");
  form.hidden = false;
  form.dataset.username = account.username;
  $("#reset-who").textContent = `${account.name}（${account.username}）`;
  form.elements.password.value = "";
  form.elements.password.focus();
}

async function resetPassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    await api(`/accounts/${encodeURIComponent(form.dataset.username)}/reset-password`, {
      method: "POST", json: {password: form.elements.password.value}});
    flash(`账号 ${form.dataset.username} 的密码已重置，请将新密码告知本人并提醒其登录后修改`);
    form.hidden = true;
    form.elements.password.value = "";
  } catch (failure) {
    flash(`重置失败：${failure.message}`, "bad");
  }
}

function showRoleFields() {
  const role = $("#account-role").value;
  $("#account-unit-field").hidden = !["staff", "dispatcher", "callback"].includes(role);
  $("#account-unit").required = role === "staff";
  $("#account-leader-field").hidden = role !== "leader";
  $("#account-leader").required = role === "leader";
}

async function createAccount(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {username: text(form, "username"), name: text(form, "name"), role: text(form, "role"),
                password: form.elements.password.value};
  if (!$("#account-unit-field").hidden && text(form, "unit")) body.unit = text(form, "unit");
  if (!$("#account-leader-field").hidden) body.leader = text(form, "leader");
  try {
    await api("/accounts", {method: "POST", json: body});
    flash(`账号 ${body.username} 已创建`);
    form.reset();
    showRoleFields();
    loadAccounts();
  } catch (failure) {
    flash(`创建失败：${failure.message}`, "bad");
  }
}

async function loadKeys() {
  try {
    const keys = listOf((await api("/keys")).body, "items", "keys");
    const rows = keys.map((key) => {
      const prefix = key.prefix || key.id || "";
      const revoked = key.revoked || key.disabled;
      return element("tr", {dataset: {key: prefix}, className: revoked ? "disabled" : ""},
        element("td", {}, key.name), element("td", {}, (KEY_ROLES.find(([code]) => code === key.role) || [, key.role])[1]),
        element("td", {}, key.unit_name || unitName(key.unit) || "—"), element("td", {className: "mono"}, prefix),
        element("td", {}, key.created_at ? when(key.created_at) : "—"), element("td", {}, revoked ? "已吊销" : "有效"),
        element("td", {}, revoked ? ""
          : element("button", {type: "button", onclick: () => revokeKey(key.name, prefix)}, "吊销")));
    });
    $("#keys-table tbody").replaceChildren(...(rows.length ? rows
      : [element("tr", {}, element("td", {colspan: 7, className: "empty"}, "暂无密钥"))]));
  } catch (failure) {
    showError(`密钥列表加载失败：${failure.message}`);
  }
}

async function revokeKey(name, prefix) {
  if (!confirm(`确定吊销密钥“${name}”（${prefix}）吗？使用它的系统将在 30 秒内失去访问权限。`)) return;
  try {
    await api(`/keys/${encodeURIComponent(prefix)}/revoke`, {method: "POST"});
    flash(`密钥 ${name} 已吊销`);
  } catch (failure) {
    flash(`吊销失败：${failure.message}`, "bad");
  }
  loadKeys();
}

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {name: text(form, "name"), role: text(form, "role")};
  if (text(form, "unit")) body.unit = text(form, "unit");
  try {
    const {body: answer} = await api("/keys", {method: "POST", json: body});
    const shown = $("#new-key");
    shown.hidden = false;
    $("#new-key-value").textContent = answer.key;
    form.reset();
    loadKeys();
  } catch (failure) {
    flash(`创建失败：${failure.message}`, "bad");
  }
}

// ------------------------------------------------------------------------------------------------ password

async function changePassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#password-error");
  error.hidden = true;
  const fresh = form.elements.new.value;
  if (fresh !== form.elements.confirm.value) {
    error.textContent = "两次输入的新密码不一致";
    error.hidden = false;
    return;
  }
  try {
    await api("/password", {method: "POST", json: {current: form.elements.current.value, new: fresh}});
    form.reset();
    flash("密码已修改；其他设备上的登录已失效");
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
}

// ------------------------------------------------------------------------------------------------ start

function poll() {
  if (document.hidden || !state.person) return;
  const view = document.body.dataset.view;
  if (view === "tickets" && !state.listBusy) loadTickets();
  else if (view === "ticket" && state.ticketId) loadTicket();
}

async function start() {
  document.addEventListener("click", followLink);
  window.addEventListener("popstate", () => { if (state.person) route(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  $("#login-form").addEventListener("submit", signIn);
  $("#search-form").addEventListener("submit", search);
  $("#logout").addEventListener("click", signOut);
  for (const button of document.querySelectorAll("[data-nav]")) {
    const view = button.dataset.nav;
    button.addEventListener("click", () => go(view === "tickets" ? listAddress() : `${HOME}?view=${view}`));
  }
  $("#password-form").addEventListener("submit", changePassword);
  $("#account-form").addEventListener("submit", createAccount);
  $("#account-role").addEventListener("change", showRoleFields);
  $("#reset-form").addEventListener("submit", resetPassword);
  $("#reset-cancel").addEventListener("click", () => { $("#reset-form").hidden = true; });
  $("#key-form").addEventListener("submit", createKey);
  $("#account-role").append(...ACCOUNT_ROLES.map(([code, name]) => element("option", {value: code}, name)));
  $("#key-role").append(...KEY_ROLES.map(([code, name]) => element("option", {value: code}, name)));
  showRoleFields();
  if (await whoAmI()) route();
  else if (!state.person && document.body.dataset.view !== "login") showLogin();
  setInterval(poll, pollSeconds * 1000);
}

start();
