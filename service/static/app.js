// The search page: asks the server's own API (GET /indexes, POST /indexes/{name}/search with explain) and shows
// the hits with the terms that made them match, and the query's expansion terms, with their weights.
// Everything shown is set as text (textContent), never parsed as HTML: stored texts cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let indexes = [];

function headers() {
  const key = sessionStorage.getItem("lsr-key") || "";
  return key ? { "Authorization": "Bearer " + key } : {};
}

function say(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const init = body === undefined ? { headers: headers() }
    : { method: "POST", headers: { ...headers(), "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(r.status + ": " + detail);
  }
  return data;
}

function fill(select, values, chosen) {
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === chosen)));
}

function showMethods() {
  const ix = indexes.find((i) => i.name === $("index").value);
  fill($("method"), ix ? ix.stats.methods : ["exact"], params.get("method") || "exact");
}

async function loadIndexes() {
  indexes = await api("/indexes");
  fill($("index"), indexes.map((i) => i.name), params.get("index") || indexes[0].name);
  showMethods();
}

const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

function chip(term, weight, matched, title) {
  const span = document.createElement("span");
  span.className = "term" + (matched ? " matched" : "");
  const b = document.createElement("b");
  b.textContent = term;
  const w = document.createElement("span");
  w.className = "w";
  w.textContent = fmt(weight);
  span.append(b, w);
  if (title) span.title = title;
  return span;
}

// The matched terms are word pieces ("zip", "##ped"); a word of the text is highlighted with the heaviest piece
// that is the word, starts it, or (a "##" piece) ends it.
function pieceOf(word, pieces) {
  const w = word.toLowerCase();
  let best = null;
  for (const p of pieces) {
    const piece = p.term.startsWith("##") ? p.term.slice(2) : p.term;
    const fits = w === piece || (piece.length >= 3 && (p.term.startsWith("##") ? w.endsWith(piece) : w.startsWith(piece)));
    if (fits && (best === null || p.score > best.score)) best = p;
  }
  return best;
}

function highlighted(text, pieces) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(/[\p{L}\p{N}]+/gu)) {
    const p = pieceOf(m[0], pieces);
    if (!p) continue;
    out.append(text.slice(last, m.index));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    mark.title = p.term + ": " + fmt(p.query_weight) + " x " + fmt(p.doc_weight) + " = " + fmt(p.score);
    mark.dataset.term = p.term;
    const sup = document.createElement("sup");
    sup.textContent = fmt(p.score);
    mark.append(sup);
    out.append(mark);
    last = m.index + m[0].length;
  }
  out.append(text.slice(last));
  return out;
}

function render(answer) {
  const matched = new Set(answer.hits.flatMap((h) => (h.explanation || []).map((p) => p.term)));
  $("terms").replaceChildren(...(answer.query_terms || []).map((t) => chip(t.term, t.weight, matched.has(t.term),
    matched.has(t.term) ? "matched by a hit below" : "no hit below holds it")));
  $("expansion").hidden = !(answer.query_terms || []).length;
  const items = answer.hits.map((h) => {
    const li = $("hit").content.firstElementChild.cloneNode(true);
    const pieces = h.explanation || [];
    li.querySelector(".rank").textContent = "#" + h.rank;
    li.querySelector(".id").textContent = h.id;
    li.querySelector(".score").textContent = "score " + fmt(h.score);
    li.querySelector(".title").append(highlighted(h.title || "", pieces));
    li.querySelector(".text").append(highlighted(h.text || "", pieces));
    li.querySelector(".why .terms").replaceChildren(...pieces.map((p) => chip(p.term, p.score, true,
      "query " + fmt(p.query_weight) + " x document " + fmt(p.doc_weight))));
    return li;
  });
  $("hits").replaceChildren(...items);
}

async function search() {
  const name = $("index").value, q = $("q").value.trim(), method = $("method").value;
  const k = Math.max(1, parseInt($("k").value, 10) || 10);
  if (!q) return;
  history.replaceState(null, "", "?" + new URLSearchParams({ q, index: name, method, k }));
  say("searching...");
  try {
    const answer = await api("/indexes/" + encodeURIComponent(name) + "/search",
      { query: q, k, method, explain: true, fields: ["title", "text"] });
    render(answer);
    say(answer.hits.length + " hits in " + answer.took_ms.toFixed(1) + " ms (" + method + ", " + name + ")");
  } catch (e) {
    $("hits").replaceChildren();
    $("expansion").hidden = true;
    say(e.message, true);
  }
}

async function start() {
  try {
    await loadIndexes();
  } catch (e) {
    $("auth").open = e.message.startsWith("401") || e.message.startsWith("403");
    say("cannot list the indexes: " + e.message, true);
    return;
  }
  say("");
  if ($("q").value) await search();
}

$("key").value = sessionStorage.getItem("lsr-key") || "";
$("key").addEventListener("change", () => { sessionStorage.setItem("lsr-key", $("key").value); start(); });
$("index").addEventListener("change", showMethods);
$("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
$("q").value = params.get("q") || "";
$("k").value = params.get("k") || "10";
start();
