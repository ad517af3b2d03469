// mngr web: the page. Every change goes through the server, which runs the CLI's operations;
// what the CLI would print (its result, or its one-line error) is what the page shows.
"use strict";

const TOKEN = document.querySelector('meta[name="mngr-token"]').content;
const POLL_MS = 2000;
const STALE_AFTER_S = 4; // a listing under way longer than this is said to be
const MAX_TRANSCRIPT_LINES = 5000;
const LIVE = ["RUNNING", "WAITING"];

const view = {
  snapshot: null,
  sortKey: "name",
  sortDir: 1,
  selected: null, // the name of the agent whose transcript is shown
  stream: null,
  rows: new Map(), // agent name -> {key, row}: the rows shown (keptRow)
};

const $ = (id) => document.getElementById(id);

// The token came in the URL; the cookie the server set carries it from now on.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", "/");
}

function element(tag, attributes, ...children) {
  const made = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") made.className = value;
    else if (key.startsWith("on")) made.addEventListener(key.slice(2), value);
    else made.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    made.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return made;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Mngr-Token": TOKEN },
    body: JSON.stringify(body || {}),
  });
  try {
    return await response.json();
  } catch (error) {
    return { ok: false, lines: [`mngr: error: the dashboard answered ${response.status}`] };
  }
}

function agentPath(name, what) {
  return `/api/agents/${encodeURIComponent(name)}/${what}`;
}

// Where the agent is: the server names it NAME@PROVIDER/HOST, the row's agent and no other.
function place(agent) {
  return agent ? { host: agent.host, provider: agent.provider } : {};
}

function listed(name) {
  const listing = view.snapshot && view.snapshot.listing;
  return listing ? listing.agents.find((agent) => agent.name === name) : undefined;
}

// -- the listing ------------------------------------------------------------------------

async function poll() {
  try {
    const response = await fetch("/api/agents", { headers: { "X-Mngr-Token": TOKEN } });
    if (!response.ok) throw new Error(`status ${response.status}`);
    view.snapshot = await response.json();
    render();
  } catch (error) {
    setStatus("the dashboard's server does not answer (is mngr web still running?)", true);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function setStatus(text, stale) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("stale", Boolean(stale));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function renderStatus(snapshot) {
  const now = snapshot.now;
  let text;
  if (!snapshot.listing) {
    text = "listing every host…";
  } else {
    const when = new Date(snapshot.listed_at * 1000).toLocaleTimeString();
    const took = snapshot.took < 1 ? `${Math.round(snapshot.took * 1000)} ms` : `${snapshot.took.toFixed(1)} s`;
    text = `listed at ${when} (took ${took})`;
  }
  const waited = snapshot.refreshing_since ? now - snapshot.refreshing_since : 0;
  const stale = snapshot.listing && waited > STALE_AFTER_S;
  if (stale) text += ` · refreshing for ${duration(waited)}: showing the last listing`;
  setStatus(text, stale);
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([key, value]) => `${key}=${value}`).join(" ");
}

function matches(agent, words) {
  const haystack = [agent.name, agent.host, agent.provider, agent.state, agent.type, agent.waiting_reason || "",
    labelsText(agent.labels), Object.keys(agent.urls || {}).join(" ")].join(" ").toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function sortValue(agent, key) {
  if (key === "labels") return labelsText(agent.labels);
  if (key === "idle_seconds") return agent.idle_seconds === null ? -1 : agent.idle_seconds;
  return String(agent[key] ?? "").toLowerCase();
}

function compare(a, b) {
  const byHost = $("group").checked ? sortValue(a, "host").localeCompare(sortValue(b, "host")) : 0;
  if (byHost) return byHost;
  const x = sortValue(a, view.sortKey);
  const y = sortValue(b, view.sortKey);
  const order = typeof x === "number" ? x - y : x.localeCompare(y);
  return order * view.sortDir || a.name.localeCompare(b.name);
}

function render() {
  const snapshot = view.snapshot;
  if (!snapshot) return;
  renderStatus(snapshot);
  renderErrors(snapshot);
  const listing = snapshot.listing;
  const tbody = document.querySelector("#agents tbody");
  if (!listing) return;
  const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const agents = listing.agents.filter((agent) => matches(agent, words)).sort(compare);
  const rows = [];
  let host = null;
  for (const agent of agents) {
    const place = `${agent.host} (${agent.provider})`;
    if ($("group").checked && place !== host) {
      host = place;
      const count = agents.filter((other) => `${other.host} (${other.provider})` === place).length;
      rows.push(element("tr", { className: "group" },
        element("th", { colspan: 8 }, `${place} · ${count} agent${count === 1 ? "" : "s"}`)));
    }
    rows.push(keptRow(agent));
  }
  for (const name of view.rows.keys()) {
    if (!agents.some((agent) => agent.name === name)) view.rows.delete(name);
  }
  tbody.replaceChildren(...rows);
  $("empty").hidden = agents.length > 0;
  $("empty").textContent = listing.agents.length ? "No agent matches the filter." : "No agents.";
  renderDetailHead();
}

function renderErrors(snapshot) {
  const lines = [];
  if (snapshot.error) lines.push(`${snapshot.error} (showing the last listing)`);
  for (const error of (snapshot.listing && snapshot.listing.errors) || []) {
    lines.push(`mngr: error: host '${error.host}' (${error.provider}): ${error.error}`);
  }
  $("host-errors").replaceChildren(...lines.map((line) => element("p", { className: "error host-error" }, line)));
}

function stateCell(agent) {
  const cell = element("td", { className: `state state-${agent.state}` }, agent.state);
  if (agent.state === "WAITING" && agent.waiting_reason) {
    cell.append(" ", element("span", { className: "reason" }, `(${agent.waiting_reason})`));
  }
  if (agent.waiting_detail) cell.title = agent.waiting_detail;
  if (agent.problem) cell.title = agent.problem;
  return cell;
}

function urlLinks(agent) {
  const cell = element("td", { className: "urls" });
  for (const [name, url] of Object.entries(agent.urls || {})) {
    cell.append(element("a", {
      href: /^https?:\/\//i.test(url) ? url : undefined, className: "agent-url", "data-url-name": name, title: url, rel: "noreferrer",
      onclick: (event) => { event.preventDefault(); openUrl(agent, name); },
    }, name), " ");
  }
  return cell;
}

function actionButtons(agent) {
  const cell = element("td", { className: "actions" });
  const button = (action, label) => element("button", {
    type: "button", className: `action ${action}`, "data-action": action,
    onclick: (event) => { event.stopPropagation(); confirmAction(agent, action); },
  }, label);
  if (LIVE.includes(agent.state) || agent.state === "DONE") cell.append(button("stop", "Stop"));
  if (agent.state === "STOPPED" || agent.state === "DONE") cell.append(button("start", "Start"));
  cell.append(button("destroy", "Destroy"));
  return cell;
}

// A row whose agent did not change (but for its idle time) is kept, not made anew: a click
// on its button as the listing is renewed lands on the button it was aimed at.
function keptRow(agent) {
  const key = JSON.stringify({ ...agent, idle_seconds: null });
  const kept = view.rows.get(agent.name);
  if (kept && kept.key === key) {
    kept.row.classList.toggle("selected", agent.name === view.selected);
    const idle = kept.row.querySelector("td.idle");
    idle.textContent = duration(agent.idle_seconds);
    idle.title = agent.idle_seconds === null ? "" : `${agent.idle_seconds} s`;
    return kept.row;
  }
  const row = agentRow(agent);
  view.rows.set(agent.name, { key, row });
  return row;
}

function agentRow(agent) {
  const row = element("tr", {
    className: `agent${agent.name === view.selected ? " selected" : ""}`, "data-agent": agent.name,
    "data-state": agent.state, "data-host": agent.host,
    onclick: (event) => { if (!event.target.closest("a, button")) select(agent.name); },
  },
  element("td", { className: "name" }, element("button", { type: "button", className: "link" }, agent.name),
    element("span", { className: "type" }, agent.type)),
  stateCell(agent),
  element("td", { className: "host" }, agent.host),
  element("td", { className: "provider wide" }, agent.provider),
  element("td", { className: "labels wide" }, ...Object.entries(agent.labels || {}).map(
    ([key, value]) => element("span", { className: "label" }, `${key}=${value}`))),
  element("td", { className: "idle", title: agent.idle_seconds === null ? "" : `${agent.idle_seconds} s` },
    duration(agent.idle_seconds)),
  urlLinks(agent),
  actionButtons(agent));
  return row;
}

for (const header of document.querySelectorAll("th[data-sort]")) {
  header.addEventListener("click", () => {
    const key = header.dataset.sort;
    view.sortDir = view.sortKey === key ? -view.sortDir : 1;
    view.sortKey = key;
    for (const other of document.querySelectorAll("th[data-sort]")) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", view.sortDir > 0 ? "ascending" : "descending");
    render();
  });
}
$("filter").addEventListener("input", render);
$("group").addEventListener("change", render);

// -- results and confirmations ------------------------------------------------------------

function notify(lines, ok) {
  const notice = $("notice");
  notice.replaceChildren(...lines.map((line) => element("div", {}, line)));
  notice.className = ok ? "ok" : "error";
  notice.hidden = false;
}

function ask(text, okLabel, error) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-error").textContent = error || "";
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const finish = (answer) => {
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-ok").onclick = () => finish(true);
    $("confirm-cancel").onclick = () => finish(false);
    dialog.onclose = () => finish(false);
    dialog.showModal();
  });
}

const VERBS = { stop: ["Stop", "stopping"], start: ["Start", "starting"], destroy: ["Destroy", "destroying"] };

async function confirmAction(agent, action) {
  const [verb, doing] = VERBS[action];
  const what = action === "destroy"
    ? `Destroy agent ${agent.name} on ${agent.host}? Its session and state are deleted, and the work dir mngr made for it.`
    : `${verb} agent ${agent.name} on ${agent.host}?`;
  if (!(await ask(what, verb))) return;
  notify([`${doing} ${agent.name}…`], true);
  let answer = await post(agentPath(agent.name, action), place(agent));
  if (action === "destroy" && answer.can_force) {
    const force = await ask(`Destroy agent ${agent.name} anyway? This work will be lost:`, "Destroy anyway",
      answer.lines.join("\n"));
    if (!force) {
      notify(answer.lines, false);
      return;
    }
    notify([`${doing} ${agent.name}…`], true);
    answer = await post(agentPath(agent.name, action), { ...place(agent), force: true });
  }
  notify(answer.lines, answer.ok);
}

async function openUrl(agent, urlName) {
  // Opened now, while the click counts as the user's: a window opened after the answer would be blocked.
  const target = window.open("about:blank", "_blank");
  notify([`opening ${agent.name}'s ${urlName}…`], true);
  const answer = await post(agentPath(agent.name, "open"), { ...place(agent), target: urlName });
  // Only http(s): a URL is the agent's to publish, and a javascript: one would run here.
  if (answer.ok && answer.url && /^https?:\/\//i.test(answer.url)) {
    notify([`${agent.name} ${urlName}: ${answer.url}`], true);
    if (target) {
      target.opener = null;
      target.location.href = answer.url;
    } else {
      window.open(answer.url, "_blank", "noopener");
    }
  } else {
    if (target) target.close();
    notify(answer.lines, false);
  }
}

// -- one agent: its transcript, following, and messages ----------------------------------

function select(name) {
  if (view.stream) view.stream.close();
  view.selected = name;
  $("detail").hidden = false;
  $("layout").classList.add("with-detail");
  $("detail-name").textContent = name;
  $("transcript").replaceChildren();
  $("transcript-note").textContent = "reading the transcript…";
  $("transcript-note").className = "";
  $("message-result").textContent = "";
  for (const row of document.querySelectorAll("tr.agent")) {
    row.classList.toggle("selected", row.dataset.agent === name);
  }
  renderDetailHead();
  const query = new URLSearchParams({ token: TOKEN, ...place(listed(name)) });
  const stream = new EventSource(`${agentPath(name, "transcript")}?${query}`);
  view.stream = stream;
  stream.addEventListener("open", () => {
    if (view.stream === stream) $("transcript-note").textContent = "following: new lines appear as they come";
  });
  stream.addEventListener("entries", (event) => appendEntries(JSON.parse(event.data)));
  stream.addEventListener("failure", (event) => {
    stream.close();
    transcriptNote(JSON.parse(event.data), true);
  });
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED || view.stream !== stream) return;
    stream.close();
    transcriptNote("the transcript stopped following (select the agent again to resume)", true);
  });
}

function transcriptNote(text, error) {
  $("transcript-note").textContent = text;
  $("transcript-note").className = error ? "error" : "";
}

function appendEntries(entries) {
  const box = $("transcript");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const entry of entries) {
    const text = entry.role === "output" ? entry.text : `${entry.role}: ${entry.text}`;
    box.append(element("div", { className: `entry role-${entry.role}` }, text || "\u00a0"));
  }
  while (box.childElementCount > MAX_TRANSCRIPT_LINES) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderDetailHead() {
  if (!view.selected || !view.snapshot || !view.snapshot.listing) return;
  const agent = listed(view.selected);
  const state = $("detail-state");
  if (!agent) {
    state.textContent = "not listed";
    state.className = "state";
    return;
  }
  const reason = agent.state === "WAITING" && agent.waiting_reason ? ` (${agent.waiting_reason})` : "";
  state.textContent = `${agent.state}${reason} on ${agent.host}`;
  state.className = `state state-${agent.state}`;
}

$("detail-close").addEventListener("click", () => {
  if (view.stream) view.stream.close();
  view.stream = null;
  view.selected = null;
  $("detail").hidden = true;
  $("layout").classList.remove("with-detail");
  render();
});

async function sendMessage() {
  const name = view.selected;
  const text = $("message-text").value;
  if (!name) return;
  const result = $("message-result");
  result.className = "";
  result.textContent = `sending to ${name}…`;
  $("message-send").disabled = true;
  try {
    const answer = await post(agentPath(name, "message"), { ...place(listed(name)), text });
    result.textContent = answer.lines.join("\n");
    result.className = answer.ok ? "ok" : "error";
    if (answer.ok) $("message-text").value = "";
  } finally {
    $("message-send").disabled = false;
  }
}

$("message-send").addEventListener("click", sendMessage);
$("message-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    sendMessage();
  }
});

poll();
