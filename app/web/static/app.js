// The page's script: calls the JSON API of this same server and builds the page with DOM
// nodes (never innerHTML with received text, which is untrusted).
"use strict";

const LABELS = ["genuine", "sales_pitch", "spam"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

function pct(x) { return `${Math.round(100 * x)}%`; }

function scoreBar(scores) {
  const bar = el("div", { class: "bar", role: "img", "aria-label": LABELS.map((l) => `${l} ${pct(scores[l])}`).join(", ") });
  for (const label of LABELS) {
    const seg = el("span", { class: `seg ${label}`, title: `${label} ${pct(scores[label])}` });
    seg.style.width = `${100 * scores[label]}%`; // through the CSSOM: the page's CSP blocks style attributes
    bar.append(seg);
  }
  return bar;
}

// The text with the words behind each reason marked, spans in received-text offsets.
function highlighted(text, reasons) {
  const marks = [];
  reasons.forEach((r, i) => (r.spans || []).forEach((s) => marks.push({ start: s.start, end: s.end, title: r.description, n: i + 1 })));
  marks.sort((a, b) => a.start - b.start);
  const out = el("p", { class: "message" });
  let at = 0;
  for (const m of marks) {
    if (m.start < at) continue;
    out.append(text.slice(at, m.start), el("mark", { title: m.title, "data-reason": String(m.n) }, text.slice(m.start, m.end)));
    at = m.end;
  }
  out.append(text.slice(at));
  return out;
}

function correctButtons(item, verdict, onDone) {
  const box = el("span", { class: "correct" }, "Correct to: ");
  for (const label of LABELS.filter((l) => l !== verdict)) {
    box.append(el("button", { type: "button", class: `small ${label}`, onclick: async () => {
      await api("/v1/feedback", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ item, label, corrects: verdict }) });
      box.replaceChildren(`Stored as ${label}.`);
      refreshWaiting();
      if (onDone) onDone(label);
    } }, label));
  }
  return box;
}

function verdictBlock(text, v, item) {
  return el("div", {},
    el("p", {}, el("span", { class: `badge ${v.verdict}`, id: "verdict" }, v.verdict), " ", pct(v.confidence), v.needs_review ? " · needs review" : ""),
    scoreBar(v.scores),
    el("p", { class: "summary" }, v.summary),
    highlighted(text, v.reasons),
    el("ol", { class: "reasons" }, ...v.reasons.map((r) => el("li", {}, `${r.description} (+${r.contribution.toFixed(2)})`))),
    correctButtons(item, v.verdict));
}

$("check-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const item = { text: $("text").value, kind: $("kind").value };
  if ($("sender").value || $("headline").value) item.sender = { name: $("sender").value || null, headline: $("headline").value || null };
  const result = $("result");
  result.hidden = false;
  result.replaceChildren("Checking…");
  try {
    const v = await api("/v1/score", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(item) });
    result.replaceChildren(verdictBlock(item.text, v, item));
  } catch (err) {
    result.replaceChildren(el("p", { class: "error", role: "alert" }, err.message));
  }
});

let conversations = [];

function renderConversations() {
  const verdict = $("filter-verdict").value;
  const reviewOnly = $("filter-review").checked;
  const sort = $("sort").value;
  const rows = conversations.filter((c) => (!verdict || c.verdict === verdict) && (!reviewOnly || c.needs_review));
  const worth = (c) => (c.verdict === "genuine" && c.awaiting_reply ? 1 : 0);
  rows.sort((a, b) => sort === "confidence" ? b.confidence - a.confidence
    : sort === "date" ? b.last_sent_at.localeCompare(a.last_sent_at)
    : worth(b) - worth(a) || b.last_sent_at.localeCompare(a.last_sent_at));
  const body = $("conversation-rows");
  body.replaceChildren();
  for (const c of rows) {
    const detail = el("tr", { class: "detail", hidden: "" }, el("td", { colspan: "5" }, ...c.messages.map((m) => el("div", { class: "msg" },
      el("p", { class: "meta" }, `${m.sent_at || ""} · `, el("span", { class: `badge ${m.verdict}` }, m.verdict), ` ${pct(m.confidence)}`),
      highlighted(m.text, m.reasons), el("p", { class: "summary" }, m.summary), correctButtons(m.item, m.verdict)))));
    const row = el("tr", { class: "conversation", tabindex: "0", onclick: () => { detail.hidden = !detail.hidden; } },
      el("td", {}, c.sender_name || "(unknown)", c.verdict === "genuine" && c.awaiting_reply ? el("span", { class: "tag" }, "worth replying to") : ""),
      el("td", {}, el("span", { class: `badge ${c.verdict}` }, c.verdict), c.needs_review ? el("span", { class: "tag" }, "review") : ""),
      el("td", {}, pct(c.confidence)), el("td", {}, c.last_sent_at || ""), el("td", {}, c.summary));
    body.append(row, detail);
  }
}

$("export-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("files").files) form.append("files", file);
  if ($("me").value) form.append("me", $("me").value);
  $("export-status").textContent = "Reading and scoring…";
  try {
    const view = await api("/ui/export", { method: "POST", body: form });
    conversations = view.conversations;
    $("export-status").textContent = `${view.scored} items scored in ${conversations.length} conversations` +
      (view.owner ? ` for ${view.owner}` : "") + `; ${view.failed} failed; model ${view.model_version}.`;
    $("conversations").hidden = false;
    renderConversations();
  } catch (err) {
    $("export-status").textContent = err.message;
  }
});
for (const id of ["filter-verdict", "filter-review", "sort"]) $(id).addEventListener("change", renderConversations);

async function refreshWaiting() {
  try { $("waiting").textContent = (await api("/ui/corrections")).waiting; } catch { /* the count is a convenience */ }
}

async function pollRetrain() {
  const state = await api("/ui/retrain");
  const box = $("retrain-state");
  box.hidden = false;
  box.textContent = [`state: ${state.state}`, state.decision ? `decision: ${state.decision}` : "", state.reason ? `why: ${state.reason}` : "",
    ...(state.log || []).slice(-12)].filter(Boolean).join("\n");
  if (state.state === "running") setTimeout(pollRetrain, 1500);
  else refreshWaiting();
}

$("retrain-button").addEventListener("click", async () => {
  try { await api("/ui/retrain", { method: "POST" }); } catch { /* already running: show its state */ }
  pollRetrain();
});

refreshWaiting();
