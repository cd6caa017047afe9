//! The Finicky Whiskers example (`examples/finicky-whiskers`), played in a real headless Chromium
//! driven over the DevTools protocol: the page starts a game, the test reads the food the cat asks
//! for and clicks the matching button (and a few wrong ones), lets the clock run out, submits the
//! game to the leaderboard with a name, and checks that the page's final score, `/api/score` and
//! `/api/leaderboard` all agree with the clicks it made. Then late, duplicated and malformed clicks,
//! bad requests, and concurrent leaderboard submissions (none may be lost) over plain HTTP.
//!
//! Three setups: `kiln up` on embedded defaults (in-process bus, SQLite key-value); `kiln up` with a
//! runtime config naming a real NATS (JetStream) and Redis; and the app deployed into `kiln serve`.

use crate::{example, kiln_bin};
use kiln_e2e::kiln::{Kiln, client};
use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::{NatsServer, RedisServer};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INSTALL: &str = "sudo apt-get install chromium   (Debian/Ubuntu; .ci/run installs it in CI)";
/// Game length asked for through the page's URL (`/?seconds=N`), to keep the test short.
const SECONDS: u64 = 10;
/// Clicks the test makes: correct ones, and a wrong one before every third correct one.
const CORRECT: u64 = 12;
const WRONG: u64 = 4;
/// How long after its end a game still takes clicks (`finicky_shared::GRACE_MS`).
const GRACE_MS: u64 = 1500;
const FOODS: [&str; 4] = ["chicken", "fish", "beef", "veg"];

// -------------------------------------------------------------------------------------------------
// A minimal DevTools-protocol client

/// Debian's `chromium` from PATH; fails the test (never skips it) when it is not installed.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromium")).find(|path| path.is_file()));
    found.unwrap_or_else(|| panic!("the Finicky Whiskers test needs a headless Chromium and `chromium` is not on PATH.\nInstall it: {INSTALL}"))
}

/// A headless Chromium with one page, driven over its DevTools websocket; killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().expect("chromium profile dir");
        let mut child = Command::new(chromium())
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"])
            .args(["--disable-background-networking", "--disable-extensions", "--mute-audio", "--window-size=900,1100"])
            // `<app>.localhost` (kiln serve's host names) is the loopback address, whatever the resolver says.
            .arg("--host-resolver-rules=MAP *.localhost 127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start chromium: {err}\nInstall it: {INSTALL}"));
        // Chromium prints `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…` on stderr;
        // the rest of its stderr is kept for error messages.
        let log = Arc::new(Mutex::new(String::new()));
        let (found, endpoint) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("chromium stderr");
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("DevTools listening on ") {
                    let _ = found.send(line[at + "DevTools listening on ".len()..].trim().to_string());
                }
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let browser_ws = match endpoint.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium printed no `DevTools listening on` line within 60 s:\n{}", log.lock().unwrap());
            }
        };
        let port: u16 = browser_ws
            .strip_prefix("ws://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("unexpected DevTools endpoint {browser_ws}"));
        // The page target (about:blank), or a new one.
        let targets: Value = client().get(format!("http://127.0.0.1:{port}/json/list")).send().and_then(|r| r.text()).map(|t| serde_json::from_str(&t).expect("JSON from /json/list")).expect("GET /json/list");
        let page = targets.as_array().and_then(|list| list.iter().find(|t| t["type"] == "page").cloned());
        let page = match page {
            Some(page) => page,
            None => client().put(format!("http://127.0.0.1:{port}/json/new?about:blank")).send().and_then(|r| r.text()).map(|t| serde_json::from_str(&t).expect("JSON from /json/new")).expect("PUT /json/new"),
        };
        let page_ws = page["webSocketDebuggerUrl"].as_str().unwrap_or_else(|| panic!("no webSocketDebuggerUrl in {page}")).to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the DevTools port");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        let (ws, _) = tungstenite::client(page_ws.as_str(), stream).unwrap_or_else(|err| panic!("DevTools websocket {page_ws}: {err}"));
        let mut browser = Browser { child, _profile: profile, log, ws, next_id: 0 };
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    /// Sends a DevTools command and waits for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::Text(request.into())).unwrap_or_else(|err| panic!("DevTools {method}: {err}"));
        loop {
            let message = self.ws.read().unwrap_or_else(|err| panic!("DevTools {method}: {err}\nchromium:\n{}", self.log.lock().unwrap()));
            let tungstenite::Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if value["id"] != id {
                continue;
            }
            if let Some(error) = value.get("error") {
                panic!("DevTools {method} failed: {error}");
            }
            return value["result"].clone();
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }));
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}\nthrew in the page: {exception}");
        }
        result["result"]["value"].clone()
    }

    fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url }));
        assert!(result.get("errorText").is_none(), "navigating to {url}: {result}");
    }

    /// Waits until the page's `document.body.dataset.state` is `state`.
    fn wait_state(&mut self, state: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let now = self.eval("document.body ? document.body.dataset.state || '' : ''");
            if now == state {
                return;
            }
            let message = self.eval("(document.querySelector('#message') || {}).textContent || ''");
            assert!(started.elapsed() < timeout, "the page did not reach state {state:?} within {timeout:?}: it is {now}; message: {message}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG screenshot of the page, written to `path`.
    fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        let result = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64_decode(result["data"].as_str().expect("screenshot data"));
        std::fs::write(path, &png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (value(c) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn assert_png(png: &[u8], path: &Path) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {}", path.display());
    assert!(png.len() > 5000, "the screenshot is suspiciously small ({} bytes): {}", png.len(), path.display());
}

// -------------------------------------------------------------------------------------------------
// The app under test, over HTTP

/// Where the app answers: its address, and the `Host` it is reached by (kiln serve).
struct Target<'a> {
    addr: SocketAddr,
    host: Option<String>,
    log: &'a (dyn Fn() -> String + Sync),
}

impl Target<'_> {
    /// The page's URL for the browser.
    fn page_url(&self, path: &str) -> String {
        match &self.host {
            Some(host) => format!("http://{host}{path}"),
            None => format!("http://{}{path}", self.addr),
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client().request(method.clone(), format!("http://{}{path}", self.addr));
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().unwrap_or_else(|err| panic!("{method} {path}: {err}\n{}", (self.log)()));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {status}, not JSON: {text:?}\n{}", (self.log)()));
        (status, value)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None)
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.request("POST", path, Some(body.to_string()))
    }

    fn score(&self, game: &str) -> Value {
        let (status, body) = self.get(&format!("/api/score?game={game}"));
        assert_eq!(status, 200, "GET /api/score?game={game}: {body}\n{}", (self.log)());
        body
    }

    /// Waits until `done(score)` holds for the game's `/api/score`.
    fn wait_score(&self, game: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let score = self.score(game);
            if done(&score) {
                return score;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "game {game}: {what} never happened: {score}\n{}", (self.log)());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn leaderboard(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/leaderboard");
        assert_eq!(status, 200, "GET /api/leaderboard: {body}");
        body["top"].as_array().unwrap_or_else(|| panic!("no `top` list: {body}")).clone()
    }
}

/// The food the seed asks for at `index`: `finicky_shared::food_at`, rewritten here so the test
/// checks the page's copy (`foodAt` in game.js) independently.
fn food_at(seed: u32, index: u32) -> &'static str {
    let mut x = seed ^ index.wrapping_mul(0x9E37_79B9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    FOODS[(x % 4) as usize]
}

fn screenshot_path(setup: &str, what: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("finicky-whiskers-{setup}-{what}.png"))
}

/// Plays one game in the browser and checks the page, the score and the leaderboard; returns the
/// game id and its seed.
fn play_in_browser(target: &Target, setup: &str, player: &str) -> (String, u32) {
    let mut browser = Browser::start();
    browser.navigate(&target.page_url(&format!("/?seconds={SECONDS}")));
    browser.wait_state("ready", Duration::from_secs(30));
    browser.eval("document.querySelector('#start').click()");
    browser.wait_state("playing", Duration::from_secs(30));
    let game = browser.eval("document.body.dataset.game").as_str().expect("the page has a game id").to_string();
    let seed = browser.eval("game.seed").as_u64().expect("the page has the seed") as u32;
    // The page and the server derive the same sequence from the seed.
    let page_foods = browser.eval("Array.from({length: 40}, (_, i) => foodAt(game.seed, i))");
    let ours: Vec<&str> = (0..40).map(|i| food_at(seed, i)).collect();
    assert_eq!(page_foods, json!(ours), "game.js and the server disagree on the sequence of seed {seed}");

    let (mut correct, mut wrong) = (0, 0);
    for i in 0..CORRECT {
        if i % 3 == 1 && wrong < WRONG {
            // A wrong food: the cat keeps asking for the same one.
            let clicked = browser.eval(
                "(() => { const r = document.querySelector('#request'); const before = r.dataset.index;
                   const b = [...document.querySelectorAll('.food')].find(b => b.dataset.food !== r.dataset.food);
                   b.click(); return [before, r.dataset.index, b.dataset.food, b.disabled]; })()",
            );
            assert_eq!(clicked[0], clicked[1], "a wrong click moved the game on: {clicked}");
            assert_eq!(clicked[3], false, "the buttons are disabled during the game: {clicked}");
            wrong += 1;
        }
        let clicked = browser.eval(
            "(() => { const r = document.querySelector('#request'); const want = r.dataset.food, before = r.dataset.index;
               document.querySelector(`.food[data-food=\"${want}\"]`).click(); return [want, before, r.dataset.index]; })()",
        );
        let index: u32 = clicked[1].as_str().and_then(|i| i.parse().ok()).unwrap_or_else(|| panic!("{clicked}"));
        assert_eq!(index as u64, i, "{clicked}");
        assert_eq!(clicked[0], food_at(seed, index), "the page asks for another food than the seed gives: {clicked}");
        assert_eq!(clicked[2], (index + 1).to_string(), "a correct click did not move the game on: {clicked}");
        correct += 1;
    }
    while wrong < WRONG {
        browser.eval("(() => { const r = document.querySelector('#request'); [...document.querySelectorAll('.food')].find(b => b.dataset.food !== r.dataset.food).click(); })()");
        wrong += 1;
    }
    assert_eq!((correct, wrong), (CORRECT, WRONG));
    assert_eq!(browser.eval("document.body.dataset.state"), "playing", "the clicks took longer than the game ({SECONDS} s)\n{}", (target.log)());
    assert_eq!(browser.eval("document.querySelector('#score').textContent"), CORRECT.to_string());
    assert_eq!(browser.eval("document.querySelector('#misses').textContent"), WRONG.to_string());
    // The page polls the server's tally while playing; give it a moment to catch up (not required:
    // the counts are checked after the game), so the screenshot shows the events counted.
    let counted = format!("{CORRECT}/{}", CORRECT + WRONG);
    let started = Instant::now();
    while browser.eval("document.querySelector('#tally').textContent") != counted.as_str() && started.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let playing = screenshot_path(setup, "playing");
    let png = browser.screenshot(&playing);
    assert_png(&png, &playing);
    println!("screenshot of the game in progress: {}", playing.display());

    // The clock runs out: the buttons are disabled, and a click now does nothing.
    browser.wait_state("over", Duration::from_secs(SECONDS + 30));
    assert_eq!(browser.eval("[...document.querySelectorAll('.food')].every(b => b.disabled)"), true);
    assert_eq!(browser.eval("document.querySelector('#over').hidden"), false);
    browser.eval(&format!("document.querySelector('#name').value = {}; document.querySelector('#submit').click()", json!(player)));
    browser.wait_state("submitted", Duration::from_secs(60));

    // The page, /api/score and /api/leaderboard agree on what was clicked.
    let final_score = browser.eval("document.querySelector('#final-score').textContent");
    assert_eq!(final_score, CORRECT.to_string(), "the page's final score\n{}", (target.log)());
    let score = target.score(&game);
    assert_eq!(
        (score["correct"].as_u64(), score["score"].as_u64(), score["wrong"].as_u64(), score["processed"].as_u64(), score["late"].as_u64(), score["duplicate"].as_u64()),
        (Some(CORRECT), Some(CORRECT), Some(WRONG), Some(CORRECT + WRONG), Some(0), Some(0)),
        "/api/score: {score}"
    );
    assert_eq!(score["ended"], true, "{score}");
    let top = target.leaderboard();
    let entry = top.iter().find(|e| e["game"] == game.as_str()).unwrap_or_else(|| panic!("game {game} is not on the leaderboard: {top:?}"));
    assert_eq!((entry["name"].as_str(), entry["score"].as_u64(), entry["wrong"].as_u64()), (Some(player), Some(CORRECT), Some(WRONG)), "{entry}");
    let mine = browser.eval("(() => { const tr = document.querySelector('#leaderboard tr.mine'); return tr ? [...tr.cells].map(td => td.textContent) : null; })()");
    assert_eq!(mine[1], player, "the page's leaderboard row: {mine}");
    assert_eq!(mine[2], CORRECT.to_string(), "the page's leaderboard row: {mine}");
    let done = screenshot_path(setup, "submitted");
    let png = browser.screenshot(&done);
    assert_png(&png, &done);
    println!("screenshot after submitting: {}", done.display());
    assert_eq!(browser.eval("document.querySelector('#message').textContent"), "", "the page reported an error");
    (game, seed)
}

/// After the browser game: late and redelivered clicks, bad requests, and concurrent submissions.
fn check_rules_over_http(target: &Target, game: &str, seed: u32) {
    // A click after the game (and its grace) counts as late, never as a score, even with the right
    // food; the same click sent twice (a redelivery) counts once.
    let score = target.score(game);
    let closes_ms = score["start_ms"].as_u64().expect("start_ms") + SECONDS * 1000 + GRACE_MS;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    std::thread::sleep(Duration::from_millis(closes_ms.saturating_sub(now_ms) + 300));
    let late = json!({ "game": game, "click": CORRECT + WRONG, "index": CORRECT, "food": food_at(seed, CORRECT as u32) }).to_string();
    for _ in 0..2 {
        let (status, body) = target.post("/api/morsel", &late);
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["published"], format!("fw.morsel.{game}"), "{body}");
    }
    let after = target.wait_score(game, "one late click and one duplicate counted", |s| s["processed"] == CORRECT + WRONG + 1 && s["duplicate"] == 1);
    assert_eq!((after["late"].as_u64(), after["correct"].as_u64(), after["wrong"].as_u64()), (Some(1), Some(CORRECT), Some(WRONG)), "{after}");

    // Bad requests get a 400 that says what is wrong; unknown games a 404.
    for (body, says) in [
        ("not json", "bad click"),
        (r#"{"game":"0123456789abcdef","click":0,"index":0,"food":"pizza"}"#, "unknown food"),
        (r#"{"game":"../etc","click":0,"index":0,"food":"fish"}"#, "bad game id"),
        (r#"{"game":"0123456789abcdef","click":-1,"index":0,"food":"fish"}"#, "bad click"),
    ] {
        let (status, reply) = target.post("/api/morsel", body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| e.contains(says)), "{body}: {reply}");
    }
    let (status, reply) = target.get("/api/score");
    assert!(status == 400 && reply["error"].as_str().is_some_and(|e| e.contains("missing `game`")), "{status} {reply}");
    let (status, reply) = target.get("/api/score?game=0123456789abcdef");
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = target.post("/api/session", r#"{"seconds": 0}"#);
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = target.post("/api/leaderboard", &json!({ "game": game, "name": "  ", "clicks": 0 }).to_string());
    assert!(status == 400 && reply["error"].as_str().is_some_and(|e| e.contains("name")), "{status} {reply}");
    let (status, reply) = target.post("/api/leaderboard", r#"{"game":"0123456789abcdef","token":"x","name":"x","clicks":0}"#);
    assert_eq!(status, 404, "{reply}");
    // A game still running cannot be submitted.
    let (status, running) = target.post("/api/session", r#"{"seconds": 60}"#);
    assert_eq!(status, 201, "{running}");
    let (status, reply) = target.post("/api/leaderboard", &json!({ "game": running["game"], "token": running["token"], "name": "early", "clicks": 0 }).to_string());
    assert_eq!(status, 409, "{reply}");
    // Only the player who started a game may submit it (the leaderboard shows game ids to everyone).
    let (status, reply) = target.post("/api/leaderboard", &json!({ "game": game, "token": "0000000000000000", "name": "thief", "clicks": 0 }).to_string());
    assert!(status == 403 && reply["error"].as_str().is_some_and(|e| e.contains("not yours")), "{status} {reply}");

    // A submission waits for clicks still in flight: it is sent as soon as the game is over, with
    // three clicks it says the page made, and the clicks (within the grace period) only after it.
    let (status, quick) = target.post("/api/session", r#"{"seconds": 1}"#);
    assert_eq!(status, 201, "{quick}");
    let (quick_game, quick_seed) = (quick["game"].as_str().expect("game id").to_string(), quick["seed"].as_u64().expect("seed") as u32);
    let quick_token = quick["token"].clone();
    let ends_ms = quick["start_ms"].as_u64().expect("start_ms") + 1000;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    std::thread::sleep(Duration::from_millis(ends_ms.saturating_sub(now_ms) + 50));
    let submitted = std::thread::scope(|scope| {
        let submission = scope.spawn(|| {
            let started = Instant::now();
            let reply = target.post("/api/leaderboard", &json!({ "game": quick_game, "token": quick_token, "name": "in flight", "clicks": 3 }).to_string());
            (reply, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..3u32 {
            let click = json!({ "game": quick_game, "click": i, "index": i, "food": food_at(quick_seed, i) }).to_string();
            assert_eq!(target.post("/api/morsel", &click).0, 202);
        }
        submission.join().expect("submission thread")
    });
    let ((status, reply), took) = submitted;
    assert_eq!(status, 200, "{reply}");
    assert_eq!((reply["score"].as_u64(), reply["complete"].as_bool()), (Some(3), Some(true)), "the submission did not wait for the clicks in flight: {reply}");
    assert!(took >= Duration::from_millis(150), "answered in {took:?}, before the clicks were sent: {reply}");

    // Eight more games submitted at once: with the browser's game and that one, exactly ten, so every
    // one must be on the top-10 list (a lost compare-and-swap update would drop one).
    let games: Vec<(String, Value)> = (0..8)
        .map(|_| {
            let (status, body) = target.post("/api/session", r#"{"seconds": 1}"#);
            assert_eq!(status, 201, "{body}");
            (body["game"].as_str().expect("game id").to_string(), body["token"].clone())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    std::thread::scope(|scope| {
        for (i, (g, token)) in games.iter().enumerate() {
            scope.spawn(move || {
                let (status, body) = target.post("/api/leaderboard", &json!({ "game": g, "token": token, "name": format!("cat {i}"), "clicks": 0 }).to_string());
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["complete"], true, "{body}");
            });
        }
    });
    let top = target.leaderboard();
    assert_eq!(top.len(), 10, "{top:?}");
    assert_eq!(top[0]["game"], game, "the browser's game scored best: {top:?}");
    assert_eq!(top[1]["game"], quick_game.as_str(), "then the one with three clicks: {top:?}");
    for (g, _) in &games {
        assert!(top.iter().any(|e| e["game"] == g.as_str()), "game {g} was lost from the leaderboard: {top:?}");
    }
    // An eleventh game with no score does not make the top 10; the list stays at ten.
    let (_, extra) = target.post("/api/session", r#"{"seconds": 1}"#);
    std::thread::sleep(Duration::from_millis(1200));
    let (status, reply) = target.post("/api/leaderboard", &json!({ "game": extra["game"], "token": extra["token"], "name": "last", "clicks": 0 }).to_string());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rank"], Value::Null, "{reply}");
    assert_eq!(target.leaderboard().len(), 10);
}

/// The game's `correct` clicks as its 16 tally shards in Redis add them up.
fn correct_in_redis(redis: &RedisServer, game: &str) -> u64 {
    (0..16)
        .filter_map(|shard| redis.get(&format!("fw:{game}:tally:{shard}")))
        .map(|record| serde_json::from_str::<Value>(&record).expect("a tally shard is JSON")["correct"].as_u64().unwrap_or(0))
        .sum()
}

fn manifest() -> PathBuf {
    example("finicky-whiskers").join("spin.toml")
}

#[test]
fn finicky_whiskers_in_the_browser_with_embedded_defaults() {
    chromium(); // fail first, and loudly, without it
    let state = tempfile::tempdir().unwrap();
    let kiln = Kiln::up(&kiln_bin(), &manifest(), &["--state-dir", state.path().to_str().unwrap()]);
    let log = || kiln.log();
    let target = Target { addr: kiln.addr, host: None, log: &log };
    let (game, seed) = play_in_browser(&target, "embedded", "Tom");
    check_rules_over_http(&target, &game, seed);
    // The state is where it was told to be, not beside the example's manifest.
    assert!(state.path().join("key_value").exists(), "{:?}", std::fs::read_dir(state.path()).map(|d| d.count()));
}

#[test]
fn finicky_whiskers_in_the_browser_on_nats_and_redis() {
    chromium();
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtime-config.toml");
    // The example's runtime config, pointed at this test's servers.
    let shipped = std::fs::read_to_string(example("finicky-whiskers").join("runtime-config.toml")).expect("the example's runtime config");
    let ours = shipped.replace("nats://127.0.0.1:4222", &nats.url()).replace("redis://127.0.0.1:6379", &redis.url());
    assert!(ours.contains(&nats.url()) && ours.contains(&redis.url()), "runtime-config.toml no longer names the default servers:\n{shipped}");
    std::fs::write(&config, ours).unwrap();
    let state = dir.path().join("state");
    let kiln = Kiln::up(&kiln_bin(), &manifest(), &["--state-dir", state.to_str().unwrap(), "--runtime-config-file", config.to_str().unwrap()]);
    let log = || format!("{}\nnats-server:\n{}", kiln.log(), nats.log());
    let target = Target { addr: kiln.addr, host: None, log: &log };
    let (game, seed) = play_in_browser(&target, "nats-redis", "Felix");
    // The events went through NATS (JetStream, for the durable subscription) and the counts are in Redis.
    let stream = nats
        .js_api("STREAM.NAMES", r#"{"subject":"fw.morsel.*"}"#)
        .and_then(|v| v["streams"].as_array()?.first()?.as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no JetStream stream covers fw.morsel.*: {:?}", nats.stream_names()));
    // The ack follows the handler's return: poll for it (bounded) rather than read it once.
    let acked = |consumer: &Value| consumer["ack_floor"]["stream_seq"].as_u64().unwrap_or(0) >= CORRECT + WRONG;
    let started = Instant::now();
    let mut consumer = nats.js_api(&format!("CONSUMER.INFO.{stream}.finicky-tally"), "").expect("the durable consumer exists");
    while !acked(&consumer) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        consumer = nats.js_api(&format!("CONSUMER.INFO.{stream}.finicky-tally"), "").expect("the durable consumer exists");
    }
    assert!(acked(&consumer), "every click was acked: {consumer}");
    // The tally is kept in 16 shards: their `correct` counts add up to the game's.
    assert_eq!(correct_in_redis(&redis, &game), CORRECT, "the counts are in Redis");
    assert!(redis.get("fw:leaderboard").is_some_and(|list| list.contains(&game)));
    check_rules_over_http(&target, &game, seed);
}

#[test]
fn finicky_whiskers_in_the_browser_on_redis_alone() {
    chromium();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtime-config.toml");
    let shipped = std::fs::read_to_string(example("finicky-whiskers").join("runtime-config-redis.toml")).expect("the example's Redis runtime config");
    let ours = shipped.replace("redis://127.0.0.1:6379", &redis.url());
    assert_eq!(ours.matches(&redis.url()).count(), 2, "runtime-config-redis.toml no longer names the default server twice:\n{shipped}");
    std::fs::write(&config, ours).unwrap();
    let state = dir.path().join("state");
    let kiln = Kiln::up(&kiln_bin(), &manifest(), &["--state-dir", state.to_str().unwrap(), "--runtime-config-file", config.to_str().unwrap()]);
    let log = || format!("{}\nredis-server:\n{}", kiln.log(), redis.log());
    let target = Target { addr: kiln.addr, host: None, log: &log };
    let (game, seed) = play_in_browser(&target, "redis", "Tigger");
    // The events went through the durable's Redis stream: it is registered, and once every click is
    // settled nothing is left in it or pending.
    assert!(redis.command(&["HGET", "kiln:msg:durables", "kiln:msg:durable:finicky-tally"]).unwrap().contains("fw.morsel.*"), "{}", log());
    let settled = || {
        redis.command(&["XLEN", "kiln:msg:durable:finicky-tally"]).unwrap() == ":0\r\n"
            && redis.command(&["XPENDING", "kiln:msg:durable:finicky-tally", "finicky-tally"]).unwrap().starts_with("*4\r\n:0\r\n")
    };
    let started = Instant::now();
    while !settled() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(settled(), "every click was settled: {:?}", redis.command(&["XPENDING", "kiln:msg:durable:finicky-tally", "finicky-tally"]));
    assert_eq!(correct_in_redis(&redis, &game), CORRECT, "the counts are in Redis");
    check_rules_over_http(&target, &game, seed);
}

#[test]
fn finicky_whiskers_in_the_browser_on_kiln_serve() {
    chromium();
    let dir = tempfile::tempdir().unwrap();
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    // The example as `kiln deploy` packs it: the manifest with the components beside it.
    let examples = kiln_e2e::examples_dir();
    let manifest = std::fs::read_to_string(manifest()).unwrap().replace("../target/wasm32-wasip2/release/", "");
    let mut archive = AppArchive::new(&manifest);
    for wasm in ["files_example", "finicky_session", "finicky_morsel", "finicky_tally", "finicky_scoreboard", "finicky_leaderboard"] {
        let path = examples.join(format!("target/wasm32-wasip2/release/{wasm}.wasm"));
        archive = archive.file(&format!("{wasm}.wasm"), std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display())));
    }
    let static_dir = example("finicky-whiskers").join("static");
    let mut dirs = vec![static_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(&static_dir).unwrap().to_str().unwrap().to_string();
                archive = archive.file(&format!("static/{relative}"), std::fs::read(&path).unwrap());
            }
        }
    }
    serve.deploy_ok("finicky", "", archive.build());
    let log = || serve.kiln.log();
    let target = Target { addr: serve.kiln.addr, host: Some(format!("finicky.localhost:{}", serve.kiln.addr.port())), log: &log };
    let (game, seed) = play_in_browser(&target, "serve", "Garfield");
    check_rules_over_http(&target, &game, seed);
}

