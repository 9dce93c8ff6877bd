// 数据驾驶舱: reads the leaders' JSON API (X-API-Key) and draws it with Apache ECharts; refreshes in place.
//
// The API key never travels in a URL the server logs: it is typed into the page, or handed over in the URL
// fragment (#key=…, which browsers never send), and kept in sessionStorage for this tab only.
// Every chart's numbers are also written into a hidden table next to it (table.chart-data), so what a leader sees
// can be checked and read by assistive technology. Each figure's card carries its 口径 (the API's definition) as its
// tooltip, and times are shown in the district's time zone (data-timezone), whatever the leader's computer is set to.
"use strict";

const KEY_STORAGE = "civicbus.apiKey";
const TEXT_COLOR = "#dbe8f7";
const PALETTE = ["#35c3ff", "#3ddc97", "#ffc857", "#ff6b6b", "#b388ff", "#4dd0e1", "#ff8a65", "#aed581"];
const COUNT_CARDS = [["created", "新增工单"], ["resolved", "办结"], ["overdue_resolve", "办结超期"]];
const TREND_SHAPE = {  // per period: the trend's granularity and how many of its points make one period
  day: {granularity: "day", points: 7, caption: "近7日与前7日新增工单"},
  week: {granularity: "day", points: 7, caption: "本周与上周每日新增工单"},
  month: {granularity: "day", points: null, caption: "本月与上月每日新增工单"},
  quarter: {granularity: "week", points: 13, caption: "本季度与上季度每周新增工单"},
};

const params = new URLSearchParams(location.search);
const state = {
  period: params.get("period") || "week",
  at: params.get("at") || "",
  rankKind: params.get("kind") || "",
  rankBy: params.get("rank_by") || "response_rate",
  mapReady: false,
  loading: false,
};
// Filters of the contract (来源、属地、类别), from the page's address: e.g. ?source=12345 for the hotline only.
const filters = Object.fromEntries(["source", "area", "category"].map((name) => [name, params.get(name) || ""]));
const charts = {};
const refreshSeconds = Number(document.body.dataset.refreshSeconds);
const timeZone = document.body.dataset.timezone;

// ------------------------------------------------------------------------------------------------ the API key

function takeKeyFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem(KEY_STORAGE, fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search);  // out of the address bar and history
  }
}

function apiKey() { return sessionStorage.getItem(KEY_STORAGE) || ""; }

function askForKey(message) {
  if (message) document.getElementById("key-message").textContent = message;
  document.getElementById("key-prompt").hidden = false;
  document.getElementById("key-input").focus();
}

class Unauthorized extends Error {}

async function api(path, query = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) if (value !== "" && value != null) url.searchParams.set(name, value);
  const response = await fetch(url, {headers: {"X-API-Key": apiKey()}});
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}：${response.status} ${detail}`);
  }
  return response;
}

async function json(path, query) { return (await api(path, query)).json(); }

// ------------------------------------------------------------------------------------------------ formatting

function formatFigure(value, unit) {
  if (value === null || value === undefined) return "—";
  return unit === "rate" ? `${(value * 100).toFixed(1)}%` : `${value.toFixed(1)}小时`;
}

function formatChange(change, unit) {
  if (change === null || change === undefined) return "无上期数据";
  const sign = change > 0 ? "↑" : change < 0 ? "↓" : "→";
  const amount = unit === "rate" ? `${Math.abs(change * 100).toFixed(1)}个百分点` : `${Math.abs(change).toFixed(1)}小时`;
  return `较上期${sign}${amount}`;
}

function definitionText(figure) {  // 口径, as the tooltip of a figure
  const ratio = figure.numerator ? `\n分子：${figure.numerator}\n分母：${figure.denominator}` : "";
  return `${figure.name}：${figure.definition}${ratio}`;
}

function localTime(moment) {  // the district's wall-clock time
  return moment.toLocaleTimeString("zh-CN", {hour12: false, timeZone});
}

function tone(change, higherIsBetter) {
  if (!change) return "same";
  return (change > 0) === higherIsBetter ? "better" : "worse";
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function isoDay(day) { return day.toISOString().slice(0, 10); }

function shiftDays(text, days) {
  const day = new Date(`${text}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + days);
  return isoDay(day);
}

function daysBetween(since, until) {
  return Math.round((new Date(`${until}T00:00:00Z`) - new Date(`${since}T00:00:00Z`)) / 86400000) + 1;
}

// ------------------------------------------------------------------------------------------------ the data table of a chart

function writeChartData(name, header, rows) {
  const table = document.querySelector(`table.chart-data[data-chart="${name}"]`);
  table.replaceChildren(
    element("thead", {}, element("tr", {}, ...header.map((title) => element("th", {}, title)))),
    element("tbody", {}, ...rows.map((row) => element("tr", {dataset: {key: row.key, value: row.value ?? ""}},
                                                       ...row.cells.map((cell) => element("td", {}, cell ?? "—"))))),
  );
}

function chart(name) {
  if (!charts[name]) charts[name] = echarts.init(document.getElementById(`chart-${name}`), "dark",
                                                 {renderer: "canvas"});
  return charts[name];
}

const BASE = {backgroundColor: "transparent", color: PALETTE, textStyle: {color: TEXT_COLOR},
              animationDuration: 400};

// ------------------------------------------------------------------------------------------------ the sections

function renderKpis(summary, overdue) {
  const cards = COUNT_CARDS.map(([code, name]) =>
    element("div", {className: "kpi count", dataset: {code, value: summary.counts[code] ?? 0}},
            element("div", {className: "name"}, name),
            element("div", {className: "value"}, summary.counts[code] ?? 0),
            element("div", {className: "change"}, "件")));
  cards.push(element("div", {className: "kpi count", dataset: {code: "overdue_open", value: overdue.total}},
                     element("div", {className: "name"}, "超期未办结"),
                     element("div", {className: "value"}, overdue.total),
                     element("div", {className: "change"}, "件")));
  for (const figure of summary.figures) {
    cards.push(element("div", {className: "kpi figure", dataset: {code: figure.code, value: figure.value ?? ""},
                               title: definitionText(figure)},
                       element("div", {className: "name"}, figure.name),
                       element("div", {className: "value"}, formatFigure(figure.value, figure.unit)),
                       element("div", {className: `change ${tone(figure.change, figure.higher_is_better)}`},
                               formatChange(figure.change, figure.unit))));
  }
  document.getElementById("kpis").replaceChildren(...cards);
}

function fillRankBy(summary) {
  const select = document.getElementById("rank-by");
  if (select.options.length) return;
  for (const figure of summary.figures) {
    select.append(element("option", {value: figure.code, title: definitionText(figure)}, `按${figure.name}`));
  }
  select.value = state.rankBy;
}

function renderRankings(rankings, figure) {
  const items = rankings.items.slice(0, 15);
  const unit = figure ? figure.unit : "rate";
  const values = items.map((item) => unit === "rate" ? +(item.value * 100).toFixed(1) : item.value);
  chart("rankings").setOption({
    ...BASE,
    tooltip: {trigger: "axis", valueFormatter: (value) => unit === "rate" ? `${value}%` : `${value}小时`},
    grid: {left: 8, right: 48, top: 10, bottom: 10, containLabel: true},
    xAxis: {type: "value", max: unit === "rate" ? 100 : null, axisLabel: {formatter: unit === "rate" ? "{value}%" : "{value}"},
            splitLine: {lineStyle: {color: "#1d4675"}}},
    yAxis: {type: "category", inverse: true, data: items.map((item) => `${item.rank}. ${item.name}`)},
    series: [{type: "bar", name: figure ? figure.name : rankings.rank_by, data: values, barMaxWidth: 18,
              label: {show: true, position: "right", formatter: unit === "rate" ? "{c}%" : "{c}"},
              itemStyle: {borderRadius: [0, 4, 4, 0]}}],
  }, {notMerge: true});
  writeChartData("rankings", ["名次", "单位", figure ? figure.name : rankings.rank_by, "新增工单"],
                 rankings.items.map((item) => ({key: item.key, value: item.value,
                                                cells: [item.rank, item.name, formatFigure(item.value, unit),
                                                        item.counts.created ?? 0]})));
}

function shortLabel(point) {  // 10月12日 for a day, 第42周 or 10月 for longer points: the axis stays readable
  if (point.since === point.until) return `${Number(point.since.slice(5, 7))}月${Number(point.since.slice(8))}日`;
  return point.label.replace(/^\d+年/, "");
}

function renderTrend(current, previous, caption) {
  document.getElementById("trend-caption").textContent = caption;
  const labels = current.points.map(shortLabel);
  const created = (points) => points.map((point) => point.counts.created ?? 0);
  chart("trend").setOption({
    ...BASE,
    tooltip: {trigger: "axis"},
    legend: {top: 0, textStyle: {color: TEXT_COLOR}},
    grid: {left: 8, right: 16, top: 36, bottom: 8, containLabel: true},
    xAxis: {type: "category", data: labels, boundaryGap: false},
    yAxis: {type: "value", minInterval: 1, splitLine: {lineStyle: {color: "#1d4675"}}},
    series: [
      {type: "line", name: "本期新增", data: created(current.points), areaStyle: {opacity: 0.15}},
      {type: "line", name: "上期新增", data: created(previous.points), lineStyle: {type: "dashed"}},
      {type: "line", name: "本期办结", data: current.points.map((point) => point.counts.resolved ?? 0)},
    ],
  }, {notMerge: true});
  writeChartData("trend", ["时间", "本期新增", "上期时间", "上期新增", "本期办结"],
                 current.points.map((point, index) => ({
                   key: point.since, value: point.counts.created ?? 0,
                   cells: [point.label, point.counts.created ?? 0, previous.points[index]?.label,
                           previous.points[index]?.counts.created ?? 0, point.counts.resolved ?? 0]})));
}

function renderCategories(rankings) {
  const items = [...rankings.items, ...(rankings.unranked || [])].filter((item) => item.counts.created);
  chart("categories").setOption({
    ...BASE,
    tooltip: {trigger: "item", formatter: "{b}：{c}件（{d}%）"},
    legend: {type: "scroll", orient: "vertical", right: 0, top: "middle", textStyle: {color: TEXT_COLOR}},
    series: [{type: "pie", name: "事件类别", radius: ["38%", "68%"], center: ["38%", "50%"],
              label: {formatter: "{b}\n{c}件", color: TEXT_COLOR},
              data: items.map((item) => ({name: item.name, value: item.counts.created}))}],
  }, {notMerge: true});
  writeChartData("categories", ["类别", "新增工单"],
                 items.map((item) => ({key: item.key, value: item.counts.created, cells: [item.name, item.counts.created]})));
}

async function ensureMap() {
  if (state.mapReady) return;
  const geojson = await json("/dashboard/areas.geojson");
  echarts.registerMap("district", geojson);
  state.areaNames = geojson.features.map((feature) => ({key: feature.properties.unit, name: feature.properties.name}));
  state.mapReady = true;
}

function renderAreas(rankings) {
  const created = Object.fromEntries([...rankings.items, ...(rankings.unranked || [])]
    .map((item) => [item.key, item.counts.created ?? 0]));
  const rows = state.areaNames.map((area) => ({...area, value: created[area.key] ?? 0}));
  chart("areas").setOption({
    ...BASE,
    tooltip: {trigger: "item", formatter: (item) => `${item.name}：${Number.isFinite(item.value) ? item.value : 0}件`},
    visualMap: {min: 0, max: Math.max(1, ...rows.map((row) => row.value)), left: 0, bottom: 0, calculable: true,
                text: ["多", "少"], textStyle: {color: TEXT_COLOR}, inRange: {color: ["#123a66", "#35c3ff", "#ffc857"]}},
    series: [{type: "map", map: "district", name: "新增工单", roam: false, layoutCenter: ["55%", "50%"],
              layoutSize: "95%",
              label: {show: true, color: "#fff", fontSize: 11, formatter: (item) => `${item.name}\n${item.value || 0}`},
              itemStyle: {borderColor: "#071a33", borderWidth: 1},
              emphasis: {label: {color: "#fff"}, itemStyle: {areaColor: "#ff8a65"}},
              data: rows.map((row) => ({name: row.name, value: row.value}))}],
  }, {notMerge: true});
  writeChartData("areas", ["村（社区）", "新增工单"],
                 rows.map((row) => ({key: row.key, value: row.value, cells: [row.name, row.value]})));
}

function renderOverdue(overdue) {
  document.getElementById("overdue-total").textContent = `共 ${overdue.total} 件`;
  const body = document.querySelector("#overdue tbody");
  if (!overdue.items.length) {
    body.replaceChildren(element("tr", {}, element("td", {colspan: 7, className: "empty"}, "暂无超期工单")));
    return;
  }
  body.replaceChildren(...overdue.items.slice(0, 10).map((item) =>
    element("tr", {dataset: {ticket: item.ticket_id}},
            element("td", {}, item.number), element("td", {}, item.title), element("td", {}, item.category_name),
            element("td", {}, item.lead_unit_name), element("td", {}, item.area_name), element("td", {}, item.state_name),
            element("td", {className: "hours"}, `${item.overdue_hours.toFixed(1)}小时`))));
}

// ------------------------------------------------------------------------------------------------ loading

function trendQueries(summary) {
  const shape = TREND_SHAPE[summary.period.kind] || TREND_SHAPE.week;
  const points = shape.points || daysBetween(summary.period.since, summary.period.until);
  // 日: the last 7 days against the 7 before; otherwise this period against the previous one, point by point.
  const previousEnd = summary.period.kind === "day" ? shiftDays(summary.period.until, -7) : summary.previous.until;
  const common = {...filters, granularity: shape.granularity, points};
  return [{...common, at: summary.period.until}, {...common, at: previousEnd}, shape.caption];
}

async function load() {
  if (!apiKey()) { askForKey(); return; }
  if (state.loading) return;
  state.loading = true;
  const status = document.getElementById("status");
  try {
    const period = {...filters, period: state.period, at: state.at};
    const [summary, overdue] = await Promise.all([json("/v1/summary", period), json("/v1/overdue", period)]);
    fillRankBy(summary);
    const [currentQuery, previousQuery, caption] = trendQueries(summary);
    const [units, categories, areas, current, previous] = await Promise.all([
      json("/v1/rankings/unit", {...period, kind: state.rankKind, rank_by: state.rankBy}),
      json("/v1/rankings/category", {...period, rank_by: "response_rate"}),
      json("/v1/rankings/area", {...period, rank_by: "response_rate"}),
      json("/v1/trend", currentQuery),
      json("/v1/trend", previousQuery),
      ensureMap(),
    ]);
    document.getElementById("period-label").textContent =
      `${summary.period.label}（${summary.period.since} 至 ${summary.period.until}）`;
    renderKpis(summary, overdue);
    renderRankings(units, summary.figures.find((figure) => figure.code === state.rankBy));
    renderTrend(current, previous, caption);
    renderCategories(categories);
    renderAreas(areas);
    renderOverdue(overdue);
    document.getElementById("error").hidden = true;
    document.getElementById("key-prompt").hidden = true;
    document.body.dataset.loads = Number(document.body.dataset.loads) + 1;
    document.body.dataset.period = summary.period.label;
    status.textContent = `数据更新于 ${localTime(new Date())}，每${refreshSeconds}秒自动刷新`;
  } catch (error) {
    if (error instanceof Unauthorized) {
      sessionStorage.removeItem(KEY_STORAGE);
      askForKey("API 密钥无效或已停用，请重新输入。");
    } else {
      const box = document.getElementById("error");
      box.textContent = `数据加载失败：${error.message}（将在下次刷新时重试）`;
      box.hidden = false;
    }
  } finally {
    state.loading = false;
  }
}

async function download(name) {
  try {
    const response = await api(`/v1/exports/${name}`, {...filters, at: state.at, rank_by: state.rankBy});
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    if (name.endsWith(".html")) {
      window.open(url, "_blank");
    } else {
      const disposition = response.headers.get("Content-Disposition") || "";
      const encoded = /filename\*=UTF-8''([^;]+)/.exec(disposition);
      const link = element("a", {href: url, download: encoded ? decodeURIComponent(encoded[1]) : name});
      document.body.append(link);
      link.click();
      link.remove();
    }
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    if (error instanceof Unauthorized) askForKey("API 密钥无效或已停用，请重新输入。");
    else alert(`导出失败：${error.message}`);
  }
}

function selectPeriod(period) {
  state.period = period;
  for (const button of document.querySelectorAll(".periods button")) {
    button.classList.toggle("active", button.dataset.period === period);
  }
}

function start() {
  takeKeyFromFragment();
  selectPeriod(state.period);
  document.getElementById("at").value = state.at;
  document.getElementById("rank-kind").value = state.rankKind;
  document.querySelectorAll(".periods button").forEach((button) =>
    button.addEventListener("click", () => { selectPeriod(button.dataset.period); load(); }));
  document.getElementById("at").addEventListener("change", (event) => { state.at = event.target.value; load(); });
  document.getElementById("rank-kind").addEventListener("change", (event) => { state.rankKind = event.target.value; load(); });
  document.getElementById("rank-by").addEventListener("change", (event) => { state.rankBy = event.target.value; load(); });
  document.querySelectorAll("[data-export]").forEach((button) =>
    button.addEventListener("click", () => download(button.dataset.export)));
  document.getElementById("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    askForKey("已退出。请重新输入 API 密钥。");
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, document.getElementById("key-input").value.trim());
    document.getElementById("key-input").value = "";
    document.getElementById("key-prompt").hidden = true;
    load();
  });
  window.addEventListener("hashchange", () => { takeKeyFromFragment(); load(); });  // a link with #key=… pasted
  window.addEventListener("resize", () => Object.values(charts).forEach((instance) => instance.resize()));
  load();
  setInterval(load, refreshSeconds * 1000);
}

start();
