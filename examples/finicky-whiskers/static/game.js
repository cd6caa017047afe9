// Finicky Whiskers, the page. The server decides the score: every click is POSTed to /api/morsel
// (published as an event and counted by the `tally` component); the page keeps its own count only
// to show it while playing. `/?seconds=5` makes a shorter game (1–120 s, default 30).
"use strict";

const FOODS = ["chicken", "fish", "beef", "veg"];

// The food requested at `index` of the game with `seed`: the same 32-bit hash as
// `finicky_shared::food_at` on the server.
function foodAt(seed, index) {
  let x = (seed ^ Math.imul(index, 0x9e3779b9)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return FOODS[x % 4];
}

const params = new URLSearchParams(location.search);
let seconds = parseInt(params.get("seconds") || "30", 10);
if (!(seconds >= 1 && seconds <= 120)) seconds = 30;

const $ = (sel) => document.querySelector(sel);
const body = document.body;
let game = null; // { id, seed, endAt, index, clicks, correct, wrong, accepted, pending }
let ticker = null;
let poller = null;

function setState(state) {
  body.dataset.state = state;
}

function message(text) {
  $("#message").textContent = text || "";
}

async function api(method, path, payload) {
  const init = { method, headers: {} };
  if (payload !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  return { status: response.status, ok: response.ok, data };
}

function render() {
  if (!game) return;
  const want = foodAt(game.seed, game.index);
  const request = $("#request");
  request.dataset.food = want;
  request.dataset.index = String(game.index);
  const img = document.createElement("img");
  img.src = `/img/${want}.svg`;
  img.alt = "";
  request.replaceChildren(img, ` ${want}, please!`);
  $("#score").textContent = String(game.correct);
  $("#misses").textContent = String(game.wrong);
}

function tick() {
  const left = Math.max(0, game.endAt - performance.now());
  $("#time").textContent = (left / 1000).toFixed(1);
  if (left <= 0) end();
}

async function pollTally() {
  if (!game) return;
  const { ok, data } = await api("GET", `/api/score?game=${game.id}`);
  if (ok && data) $("#tally").textContent = `${data.correct}/${data.processed}`;
}

async function start() {
  message("");
  $("#start").disabled = true;
  const { ok, data } = await api("POST", "/api/session", { seconds });
  $("#start").disabled = false;
  if (!ok || !data) {
    message(`could not start a game: ${(data && data.error) || "server error"}`);
    return;
  }
  clearInterval(poller); // "Play again" without submitting: the last game's poller stops here
  game = { id: data.game, token: data.token, seed: data.seed, endAt: performance.now() + data.seconds * 1000, index: 0, clicks: 0, correct: 0, wrong: 0, accepted: 0, pending: [] };
  body.dataset.game = game.id;
  $("#over").hidden = true;
  $("#submit-form").hidden = false;
  $("#final-score").textContent = "–";
  $("#rank").textContent = "";
  $("#tally").textContent = "0/0";
  document.querySelectorAll(".food").forEach((b) => (b.disabled = false));
  setState("playing");
  render();
  tick();
  ticker = setInterval(tick, 100);
  poller = setInterval(pollTally, 500);
}

function feed(food) {
  if (!game || body.dataset.state !== "playing") return;
  const click = game.clicks++;
  const index = game.index;
  const good = food === foodAt(game.seed, index);
  if (good) {
    game.correct++;
    game.index++;
  } else {
    game.wrong++;
  }
  body.classList.remove("yum", "yuck");
  body.classList.add(good ? "yum" : "yuck");
  setTimeout(() => body.classList.remove("yum", "yuck"), 150);
  const id = game.id;
  game.pending.push(
    api("POST", "/api/morsel", { game: id, click, index, food }).then((r) => {
      if (r.ok && game && game.id === id) game.accepted++;
      else if (!r.ok) message(`a click was refused: ${(r.data && r.data.error) || r.status}`);
    }, () => message("a click did not reach the server")),
  );
  render();
}

function end() {
  clearInterval(ticker);
  document.querySelectorAll(".food").forEach((b) => (b.disabled = true));
  $("#time").textContent = "0.0";
  setState("over");
  $("#over").hidden = false;
  $("#request").textContent = "Time's up!";
  $("#name").focus();
}

async function submit(event) {
  if (event) event.preventDefault();
  if (!game || body.dataset.state !== "over") return;
  const name = $("#name").value.trim();
  if (!name) {
    message("type a name first");
    return;
  }
  setState("submitting");
  message("");
  // Every click must have been accepted before we say how many there were.
  await Promise.allSettled(game.pending);
  let result = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    result = await api("POST", "/api/leaderboard", { game: game.id, token: game.token, name, clicks: game.accepted });
    if (result.ok && !result.data) break; // a 200 that is not JSON: reported below
    if (result.ok && result.data.complete) break;
    // Still running (409) or events still in flight: ask again in a moment.
    if (!(result.status === 409 || result.ok)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  clearInterval(poller);
  await pollTally();
  if (!result || !result.ok || !result.data) {
    message(`could not submit: ${(result && result.data && result.data.error) || "server error"}`);
    setState("over");
    return;
  }
  const data = result.data;
  // Clicks still uncounted after every retry: say the score may be short rather than pass it off as final.
  if (!data.complete) message(`${data.clicks - data.processed} of your clicks were not counted in time`);
  $("#final-score").textContent = String(data.score);
  $("#rank").textContent = data.rank ? `(#${data.rank} on the board)` : "(not in the top 10)";
  renderBoard(data.top);
  $("#submit-form").hidden = true;
  setState("submitted");
}

function renderBoard(top) {
  const tbody = $("#leaderboard tbody");
  tbody.replaceChildren();
  if (top.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.className = "empty";
    td.textContent = "No scores yet: be the first!";
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  top.forEach((entry, i) => {
    const tr = document.createElement("tr");
    if (game && entry.game === game.id) tr.className = "mine";
    tr.dataset.game = entry.game;
    for (const text of [String(i + 1), entry.name, String(entry.score), String(entry.wrong)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  });
}

async function loadBoard() {
  const { ok, data } = await api("GET", "/api/leaderboard");
  if (ok && data) renderBoard(data.top);
}

document.querySelectorAll(".food").forEach((b) => b.addEventListener("click", () => feed(b.dataset.food)));
$("#start").addEventListener("click", start);
$("#submit-form").addEventListener("submit", submit);
$("#again").addEventListener("click", () => {
  $("#over").hidden = true;
  setState("ready");
  start();
});
window.foodAt = foodAt; // for the browser test: the page and the server agree on the sequence
$("#time").textContent = seconds.toFixed(1);
loadBoard().finally(() => setState("ready"));
