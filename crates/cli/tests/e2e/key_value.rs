//! Key-value, as apps use it: `fermyon:spin/key-value@2.0.0` (spin-sdk), `wasi:keyvalue@0.2.0-draft`
//! (wasmCloud) and `wasi:keyvalue@0.2.0-draft2` (Spin 3), on the embedded store and on real Redis.
//! Grants, durability across `kill -9`, atomic increments under parallel load, compare-and-swap,
//! a Redis outage, and isolation between apps.
//!
//! Also the helpers the other capability tests share ([`App`], [`enc`], [`par`]).

use crate::{body, example, kiln_bin, single};
use kiln_e2e::kiln::{Kiln, app_dir, client};
use kiln_e2e::services::RedisServer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Percent-encodes a query parameter value.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/?k1=v1&k2=v2…`, values percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("/?{}", parts.join("&"))
}

/// `<path>?k1=v1&k2=v2…` (`path` is `/` for guests that answer at the root).
pub(crate) fn at(path: &str, pairs: &[(&str, &str)]) -> String {
    format!("{path}{}", &query(pairs)[1..])
}

/// A `kiln up` of a manifest written to its own directory (so its default state dir, `.kiln/`, is
/// its own), with an optional `runtime-config.toml` beside it. Restartable on the same directory.
pub(crate) struct App {
    pub kiln: Kiln,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl App {
    pub fn start(manifest: &str, runtime_config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> App {
        Self::start_with_files(manifest, runtime_config, &[], args, env)
    }

    pub fn start_with_files(
        manifest: &str,
        runtime_config: Option<&str>,
        files: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> App {
        let mut all_files: Vec<(&str, &str)> = files.to_vec();
        if let Some(rc) = runtime_config {
            all_files.push(("runtime-config.toml", rc));
        }
        let dir = app_dir(manifest, &all_files);
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if runtime_config.is_some() {
            args.push("--runtime-config-file".into());
            args.push(dir.path().join("runtime-config.toml").display().to_string());
        }
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let kiln = Self::up(&dir.path().join("kiln.toml"), &args, &env);
        App { kiln, dir, args, env }
    }

    fn up(manifest: &Path, args: &[String], env: &[(String, String)]) -> Kiln {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Kiln::up_with_env(&kiln_bin(), manifest, &args, &env)
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("kiln.toml")
    }

    /// Kills kiln with SIGKILL (no chance to flush anything) and starts it again on the same
    /// directory, state dir, arguments and environment.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.restart();
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill9(&mut self) {
        self.kiln.signal("KILL");
        self.kiln.wait_exit(Duration::from_secs(10)).expect("kiln dies on SIGKILL");
    }

    /// Starts kiln again (after [`App::kill9`]) on the same directory, arguments and environment.
    pub fn restart(&mut self) {
        self.kiln = Self::up(&self.manifest(), &self.args, &self.env);
    }

    /// GET `path` → (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        body(self.kiln.get(path))
    }

    /// GET `/?<pairs>` → (status, body).
    pub fn q(&self, pairs: &[(&str, &str)]) -> (u16, String) {
        self.get(&query(pairs))
    }
}

/// Runs `n` GETs of `paths(i)` on `threads` threads; returns every (status, body) in index order.
pub(crate) fn par(kiln: &Kiln, n: usize, threads: usize, paths: impl Fn(usize) -> String + Sync) -> Vec<(u16, String)> {
    let results = Mutex::new(vec![(0u16, String::new()); n]);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let client = client();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let url = kiln.url(&paths(i));
                    let result = match client.get(&url).send() {
                        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
                        Err(e) => (0, format!("request failed: {e}")),
                    };
                    results.lock().unwrap()[i] = result;
                }
            });
        }
    });
    results.into_inner().unwrap()
}

/// Where the `default` store lives.
#[derive(Clone, Copy)]
pub(crate) enum Backend<'a> {
    Embedded,
    Redis(&'a RedisServer),
}

impl Backend<'_> {
    pub(crate) fn runtime_config(self) -> Option<String> {
        match self {
            Backend::Embedded => None,
            Backend::Redis(redis) => Some(format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url())),
        }
    }
}

/// One component running `guest` with `key_value_stores = <stores>` (a TOML array) and `extra`.
pub(crate) fn kv_manifest(guest: &str, stores: &str, extra: &str) -> String {
    single(guest, "/...", &format!("key_value_stores = {stores}\n{extra}"))
}

pub(crate) fn kv_app(guest: &str, backend: Backend<'_>) -> App {
    App::start(&kv_manifest(guest, "[\"default\"]", ""), backend.runtime_config().as_deref(), &[], &[])
}

fn ok(result: (u16, String)) -> String {
    assert_eq!(result.0, 200, "{}", result.1);
    result.1
}

// ---------------------------------------------------------------------------------------------
// fermyon:spin/key-value@2.0.0 (spin-sdk)
// ---------------------------------------------------------------------------------------------

/// Every function of Spin's key-value interface, through a guest answering the `spin_kv` grammar at
/// `path`: `spin_kv` (`fermyon:spin/key-value@2.0.0`) or `spin4_http` (`spin:key-value@3.0.0`).
pub(crate) fn spin_kv_every_function(guest: &str, path: &str, backend: Backend<'_>) {
    let app = kv_app(guest, backend);
    let kv = |pairs: &[(&str, &str)]| app.get(&at(path, pairs));
    assert_eq!(kv(&[("op", "open")]), (200, "opened".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "k")]), (404, "none".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "k")]), (200, "false".into()));
    assert_eq!(kv(&[("op", "keys")]), (200, "".into()));
    assert_eq!(kv(&[("op", "set"), ("key", "k"), ("value", "v1")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "k")]), (200, "v1".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "k")]), (200, "true".into()));
    // Overwrite.
    assert_eq!(kv(&[("op", "set"), ("key", "k"), ("value", "v2")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "k")]), (200, "v2".into()));
    // Keys and values with spaces, punctuation and non-ASCII survive as they are.
    let odd_key = "a key/with:odd chars?&=ü";
    let odd_value = "välue with spaces & symbols = % +";
    assert_eq!(kv(&[("op", "set"), ("key", odd_key), ("value", odd_value)]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", odd_key)]), (200, odd_value.into()));
    // An empty value is a value, not an absence.
    assert_eq!(kv(&[("op", "set"), ("key", "empty"), ("value", "")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "empty")]), (200, "".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "empty")]), (200, "true".into()));
    assert_eq!(kv(&[("op", "keys")]), (200, format!("{odd_key}\nempty\nk")));
    // Delete, and deleting what is not there is not an error.
    assert_eq!(kv(&[("op", "delete"), ("key", "k")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "k")]), (404, "none".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "k")]), (200, "false".into()));
    assert_eq!(kv(&[("op", "delete"), ("key", "k")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "keys")]), (200, format!("{odd_key}\nempty")));
    // Values are bytes: a large one round-trips exactly.
    assert_eq!(kv(&[("op", "set"), ("key", "big"), ("size", "500000")]), (200, "ok".into()));
    let (status, big) = kv(&[("op", "get"), ("key", "big")]);
    assert_eq!((status, big.len()), (200, 500_000));
    assert!(big.bytes().all(|b| b == b'x'));
}

#[test]
fn spin_key_value_every_function_embedded() {
    spin_kv_every_function("spin_kv", "/", Backend::Embedded);
}

#[test]
fn spin_key_value_every_function_redis() {
    let redis = RedisServer::start();
    spin_kv_every_function("spin_kv", "/", Backend::Redis(&redis));
    // The data really is in Redis.
    let keys = redis.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains("empty") && keys.contains("big"), "{keys}");
}

#[test]
fn spin_key_value_denials() {
    spin_kv_denials("spin_kv", "/");
}

/// Spin's key-value denials, through a guest answering the `spin_kv` grammar at `path`.
pub(crate) fn spin_kv_denials(guest: &str, path: &str) {
    // Not granted at all: access-denied, for the default label too.
    let app = App::start(&single(guest, "/...", ""), None, &[], &[]);
    let kv = |app: &App, pairs: &[(&str, &str)]| app.get(&at(path, pairs));
    assert_eq!(kv(&app, &[("op", "open")]), (500, "error: AccessDenied".into()));
    assert_eq!(kv(&app, &[("op", "set"), ("key", "k"), ("value", "v")]), (500, "error: AccessDenied".into()));
    // Granted `default` only: another label is denied, whether it exists or not.
    let rc = "[key_value_store.other]\ntype = \"kiln\"\n";
    let app = App::start(&kv_manifest(guest, "[\"default\"]", ""), Some(rc), &[], &[]);
    assert_eq!(kv(&app, &[("op", "open"), ("store", "default")]), (200, "opened".into()));
    assert_eq!(kv(&app, &[("op", "open"), ("store", "other")]), (500, "error: AccessDenied".into()));
    assert_eq!(kv(&app, &[("op", "open"), ("store", "nowhere")]), (500, "error: AccessDenied".into()));
    // Granted but configured nowhere: no-such-store.
    let app = App::start(&kv_manifest(guest, "[\"default\", \"cache\"]", ""), None, &[], &[]);
    assert_eq!(kv(&app, &[("op", "open"), ("store", "cache")]), (500, "error: NoSuchStore".into()));
    assert_eq!(kv(&app, &[("op", "open"), ("store", "default")]), (200, "opened".into()));
}

#[test]
fn named_stores_from_the_runtime_config_are_separate() {
    let rc = "[key_value_store.cache]\ntype = \"spin\"\n\n[key_value_store.files]\ntype = \"kiln\"\npath = \"data/files.db\"\n";
    let app = App::start(&kv_manifest("spin_kv", "[\"default\", \"cache\", \"files\"]", ""), Some(rc), &[], &[]);
    for store in ["default", "cache", "files"] {
        assert_eq!(app.q(&[("op", "set"), ("store", store), ("key", "k"), ("value", store)]), (200, "ok".into()));
    }
    for store in ["default", "cache", "files"] {
        assert_eq!(app.q(&[("op", "get"), ("store", store), ("key", "k")]), (200, store.into()));
        assert_eq!(app.q(&[("op", "keys"), ("store", store)]), (200, "k".into()));
    }
    // `path` is relative to the runtime config file.
    assert!(app.dir.path().join("data/files.db").exists(), "no data/files.db in {}", app.dir.path().display());
}

const KEY_TOO_LONG: &str = "error: Other(\"key too long: 257 bytes, the limit is 256";
const VALUE_TOO_LARGE: &str = "error: Other(\"value too large: 1048577 bytes, the limit is 1048576";

#[test]
fn key_and_value_size_limits() {
    let app = kv_app("spin_kv", Backend::Embedded);
    let key256 = "k".repeat(256);
    let key257 = "k".repeat(257);
    assert_eq!(app.q(&[("op", "set"), ("key", &key256), ("value", "v")]), (200, "ok".into()));
    assert_eq!(app.q(&[("op", "get"), ("key", &key256)]), (200, "v".into()));
    let (status, text) = app.q(&[("op", "set"), ("key", &key257), ("value", "v")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with(KEY_TOO_LONG), "{text}");
    // Nothing was stored (asking about a key that long is itself refused).
    let keys = app.q(&[("op", "keys")]).1;
    assert!(!keys.contains(&key257), "{keys}");
    // 1 MB values are accepted, larger ones refused with a clear error.
    assert_eq!(app.q(&[("op", "set"), ("key", "mb"), ("size", "1000000")]), (200, "ok".into()));
    assert_eq!(app.q(&[("op", "get"), ("key", "mb")]).1.len(), 1_000_000);
    let (status, text) = app.q(&[("op", "set"), ("key", "too-big"), ("size", "1048577")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with(VALUE_TOO_LARGE), "{text}");
    assert_eq!(app.q(&[("op", "exists"), ("key", "too-big")]).1, "false");
    // Exactly 1 MiB is still accepted.
    assert_eq!(app.q(&[("op", "set"), ("key", "mib"), ("size", "1048576")]), (200, "ok".into()));
    // The same limits through wasi:keyvalue.
    for guest in ["wasi_kv_config", "wasi_kv_draft2"] {
        let app = kv_app(guest, Backend::Embedded);
        let (status, text) = app.q(&[("op", "set"), ("key", &key257), ("value", "v")]);
        assert_eq!(status, 500, "{guest}: {text}");
        assert!(text.starts_with(KEY_TOO_LONG), "{guest}: {text}");
        let (status, text) = app.q(&[("op", "set"), ("key", "too-big"), ("size", "1048577")]);
        assert_eq!(status, 500, "{guest}: {text}");
        assert!(text.starts_with(VALUE_TOO_LARGE), "{guest}: {text}");
    }
    // And on Redis: the limits are Kiln's, not the backend's.
    let redis = RedisServer::start();
    let app = kv_app("spin_kv", Backend::Redis(&redis));
    assert!(app.q(&[("op", "set"), ("key", &key257), ("value", "v")]).1.starts_with(KEY_TOO_LONG));
    assert!(app.q(&[("op", "set"), ("key", "too-big"), ("size", "1048577")]).1.starts_with(VALUE_TOO_LARGE));
}

// ---------------------------------------------------------------------------------------------
// wasi:keyvalue 0.2.0-draft (wasmCloud) and 0.2.0-draft2 (Spin 3)
// ---------------------------------------------------------------------------------------------

fn wasi_kv_every_function(guest: &str, backend: Backend<'_>) {
    let app = kv_app(guest, backend);
    let kv = |pairs: &[(&str, &str)]| app.q(pairs);
    assert_eq!(kv(&[("op", "open")]), (200, "opened".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "a")]), (404, "none".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "a")]), (200, "false".into()));
    assert_eq!(kv(&[("op", "list-keys")]), (200, "".into()));
    assert_eq!(kv(&[("op", "set"), ("key", "a"), ("value", "1")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "a")]), (200, "1".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "a")]), (200, "true".into()));
    assert_eq!(kv(&[("op", "set"), ("key", "a"), ("value", "one")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get"), ("key", "a")]), (200, "one".into()));
    assert_eq!(kv(&[("op", "delete"), ("key", "a")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "a")]), (200, "false".into()));
    assert_eq!(kv(&[("op", "delete"), ("key", "a")]), (200, "ok".into()));
    // Batch.
    assert_eq!(kv(&[("op", "set-many"), ("kv", "b:2,c:3,d:4")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "get-many"), ("keys", "b,x,d")]), (200, "b=2\nx: none\nd=4".into()));
    assert_eq!(kv(&[("op", "list-keys")]), (200, "b\nc\nd".into()));
    assert_eq!(kv(&[("op", "delete-many"), ("keys", "b,d,nope")]), (200, "ok".into()));
    assert_eq!(kv(&[("op", "list-keys")]), (200, "c".into()));
    // Atomic increment: a missing key counts from 0.
    assert_eq!(kv(&[("op", "increment"), ("key", "n"), ("delta", "5")]), (200, "5".into()));
    assert_eq!(kv(&[("op", "increment"), ("key", "n"), ("delta", "1")]), (200, "6".into()));
    assert_eq!(kv(&[("op", "increment"), ("key", "n"), ("delta", "0")]), (200, "6".into()));
    assert_eq!(kv(&[("op", "exists"), ("key", "n")]), (200, "true".into()));
    // Listing many keys follows the cursor to the end.
    let many: Vec<String> = (0..120).map(|i| format!("m{i:03}:v")).collect();
    assert_eq!(kv(&[("op", "set-many"), ("kv", &many.join(","))]), (200, "ok".into()));
    let (status, listed) = kv(&[("op", "list-keys")]);
    assert_eq!(status, 200);
    let listed: Vec<&str> = listed.lines().collect();
    assert_eq!(listed.len(), 122, "{listed:?}");
    assert_eq!(listed[..2], ["c", "m000"]);
    assert_eq!(listed[121], "n");
}

#[test]
fn wasi_keyvalue_draft_every_function_embedded() {
    wasi_kv_every_function("wasi_kv_config", Backend::Embedded);
}

#[test]
fn wasi_keyvalue_draft_every_function_redis() {
    let redis = RedisServer::start();
    wasi_kv_every_function("wasi_kv_config", Backend::Redis(&redis));
}

#[test]
fn wasi_keyvalue_draft2_every_function_embedded() {
    wasi_kv_every_function("wasi_kv_draft2", Backend::Embedded);
}

#[test]
fn wasi_keyvalue_draft2_every_function_redis() {
    let redis = RedisServer::start();
    wasi_kv_every_function("wasi_kv_draft2", Backend::Redis(&redis));
}

#[test]
fn draft2_increment_takes_negative_deltas() {
    let app = kv_app("wasi_kv_draft2", Backend::Embedded);
    assert_eq!(app.q(&[("op", "increment"), ("key", "n"), ("delta", "10")]), (200, "10".into()));
    assert_eq!(app.q(&[("op", "increment"), ("key", "n"), ("delta", "-3")]), (200, "7".into()));
}

fn compare_and_swap(backend: Backend<'_>) {
    let app = kv_app("wasi_kv_draft2", backend);
    // On a missing key.
    assert_eq!(app.q(&[("op", "cas"), ("key", "c"), ("value", "v1")]), (200, "current: none\nswapped".into()));
    assert_eq!(app.q(&[("op", "get"), ("key", "c")]), (200, "v1".into()));
    // On a present key, with the value we expect.
    assert_eq!(app.q(&[("op", "cas"), ("key", "c"), ("expect", "v1"), ("value", "v2")]), (200, "current: v1\nswapped".into()));
    assert_eq!(app.q(&[("op", "get"), ("key", "c")]), (200, "v2".into()));
    // Someone else writes between `current` and `swap`: the swap must fail and their write stand.
    assert_eq!(
        app.q(&[("op", "cas-race"), ("key", "c"), ("value", "mine"), ("interloper", "theirs")]),
        (409, "current: v2\ncas-failed".into())
    );
    assert_eq!(app.q(&[("op", "get"), ("key", "c")]), (200, "theirs".into()));
    // The same race on a key that did not exist when the CAS began.
    assert_eq!(
        app.q(&[("op", "cas-race"), ("key", "fresh"), ("value", "mine"), ("interloper", "theirs")]),
        (409, "current: none\ncas-failed".into())
    );
    assert_eq!(app.q(&[("op", "get"), ("key", "fresh")]), (200, "theirs".into()));
}

#[test]
fn draft2_compare_and_swap_is_real_embedded() {
    compare_and_swap(Backend::Embedded);
}

#[test]
fn draft2_compare_and_swap_is_real_redis() {
    let redis = RedisServer::start();
    compare_and_swap(Backend::Redis(&redis));
}

#[test]
fn wasi_keyvalue_denials() {
    for guest in ["wasi_kv_config", "wasi_kv_draft2"] {
        let app = App::start(&single(guest, "/...", ""), None, &[], &[]);
        assert_eq!(app.q(&[("op", "open")]), (500, "error: AccessDenied".into()), "{guest}");
        assert_eq!(app.q(&[("op", "increment"), ("key", "n")]), (500, "error: AccessDenied".into()), "{guest}");
        let app = App::start(&kv_manifest(guest, "[\"default\", \"cache\"]", ""), None, &[], &[]);
        assert_eq!(app.q(&[("op", "open"), ("store", "other")]), (500, "error: AccessDenied".into()), "{guest}");
        assert_eq!(app.q(&[("op", "open"), ("store", "cache")]), (500, "error: NoSuchStore".into()), "{guest}");
        assert_eq!(app.q(&[("op", "open"), ("store", "default")]), (200, "opened".into()), "{guest}");
    }
}

#[test]
fn every_interface_sees_the_same_store() {
    // Three components of one app, each granted `default`, each through another interface version.
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "three-interfaces"
[[trigger.http]]
route = "/spin/..."
component = "spin"
[[trigger.http]]
route = "/draft/..."
component = "draft"
[[trigger.http]]
route = "/draft2/..."
component = "draft2"
[component.spin]
source = "{spin}"
key_value_stores = ["default"]
[component.draft]
source = "{draft}"
key_value_stores = ["default"]
[component.draft2]
source = "{draft2}"
key_value_stores = ["default"]
"#,
        spin = kiln_e2e::guest("spin_kv").display(),
        draft = kiln_e2e::guest("wasi_kv_config").display(),
        draft2 = kiln_e2e::guest("wasi_kv_draft2").display(),
    );
    let app = App::start(&manifest, None, &[], &[]);
    assert_eq!(app.get(&format!("/spin/{}", query(&[("op", "set"), ("key", "shared"), ("value", "from spin")]))).0, 200);
    assert_eq!(app.get(&format!("/draft/{}", query(&[("op", "get"), ("key", "shared")]))), (200, "from spin".into()));
    assert_eq!(app.get(&format!("/draft2/{}", query(&[("op", "get"), ("key", "shared")]))), (200, "from spin".into()));
    assert_eq!(app.get(&format!("/draft2/{}", query(&[("op", "set"), ("key", "other"), ("value", "from draft2")]))).0, 200);
    assert_eq!(app.get(&format!("/spin/{}", query(&[("op", "keys")]))), (200, "other\nshared".into()));
}

// ---------------------------------------------------------------------------------------------
// Durability, concurrency, faults, isolation
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut app = kv_app("spin_kv", Backend::Embedded);
    for i in 0..40 {
        assert_eq!(app.q(&[("op", "set"), ("key", &format!("seq{i}")), ("value", &format!("value {i}"))]), (200, "ok".into()));
    }
    assert_eq!(app.q(&[("op", "delete"), ("key", "seq0")]), (200, "ok".into()));
    // Writes from parallel requests, cut off by SIGKILL in the middle: every one that was
    // acknowledged (200) must be there after the restart.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|t| {
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            let base = app.kiln.url("");
            std::thread::spawn(move || {
                let client = client();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("par-{t}-{i}");
                    let url = format!("{base}{}", query(&[("op", "set"), ("key", &key), ("value", &key)]));
                    match client.get(url).timeout(Duration::from_secs(10)).send() {
                        Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push(key),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    app.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 10, "too few parallel writes got through: {}", acknowledged.len());
    app.restart();
    for i in 1..40 {
        assert_eq!(app.q(&[("op", "get"), ("key", &format!("seq{i}"))]), (200, format!("value {i}")));
    }
    assert_eq!(app.q(&[("op", "get"), ("key", "seq0")]), (404, "none".into()));
    let keys: BTreeSet<String> = ok(app.q(&[("op", "keys")])).lines().map(str::to_string).collect();
    for key in &acknowledged {
        assert!(keys.contains(key), "acknowledged write {key} lost after kill -9 ({} acknowledged)", acknowledged.len());
    }
    // And increments through wasi:keyvalue.
    let mut app = kv_app("wasi_kv_config", Backend::Embedded);
    for i in 1..=20 {
        assert_eq!(app.q(&[("op", "increment"), ("key", "n"), ("delta", "1")]), (200, i.to_string()));
    }
    app.kill9_and_restart();
    assert_eq!(app.q(&[("op", "increment"), ("key", "n"), ("delta", "0")]), (200, "20".into()));
}

#[test]
fn state_lives_in_the_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().display().to_string();
    let manifest = kv_manifest("spin_kv", "[\"default\"]", "");
    let app = App::start(&manifest, None, &["--state-dir", &state_arg], &[]);
    assert_eq!(app.q(&[("op", "set"), ("key", "k"), ("value", "kept")]), (200, "ok".into()));
    assert!(std::fs::read_dir(state.path()).unwrap().next().is_some(), "nothing written to --state-dir");
    assert!(!app.dir.path().join(".kiln").exists() || dir_is_empty(&app.dir.path().join(".kiln")), "state went beside the manifest");
    drop(app);
    // Another app directory, same --state-dir: the data is there.
    let app = App::start(&manifest, None, &["--state-dir", &state_arg], &[]);
    assert_eq!(app.q(&[("op", "get"), ("key", "k")]), (200, "kept".into()));
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

fn parallel_increments(guest: &str, backend: Backend<'_>) {
    let app = kv_app(guest, backend);
    let results = par(&app.kiln, 200, 25, |_| query(&[("op", "increment"), ("key", "hits"), ("delta", "1")]));
    let mut seen = BTreeSet::new();
    for (status, text) in &results {
        assert_eq!(*status, 200, "{text}");
        seen.insert(text.parse::<u64>().unwrap_or_else(|_| panic!("not a number: {text:?}")));
    }
    // Every increment saw a distinct value: exactly 1..=200.
    assert_eq!(seen, (1..=200).collect::<BTreeSet<u64>>());
    assert_eq!(app.q(&[("op", "increment"), ("key", "hits"), ("delta", "0")]), (200, "200".into()));
}

#[test]
fn parallel_increments_are_atomic_embedded() {
    parallel_increments("wasi_kv_config", Backend::Embedded);
    parallel_increments("wasi_kv_draft2", Backend::Embedded);
}

#[test]
fn parallel_increments_are_atomic_redis() {
    let redis = RedisServer::start();
    parallel_increments("wasi_kv_config", Backend::Redis(&redis));
    let redis = RedisServer::start();
    parallel_increments("wasi_kv_draft2", Backend::Redis(&redis));
}

#[test]
fn parallel_writers_to_distinct_keys_all_land() {
    let app = kv_app("spin_kv", Backend::Embedded);
    let results = par(&app.kiln, 150, 25, |i| query(&[("op", "set"), ("key", &format!("w{i:03}")), ("value", &i.to_string())]));
    assert!(results.iter().all(|(s, t)| *s == 200 && t == "ok"), "{results:?}");
    let keys = ok(app.q(&[("op", "keys")]));
    assert_eq!(keys.lines().count(), 150);
    assert_eq!(app.q(&[("op", "get"), ("key", "w149")]), (200, "149".into()));
}

#[test]
fn a_redis_outage_fails_fast_and_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    // `/redis/...` uses the Redis-backed `default`; `/local/...` an embedded store; `/...` echoes.
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "outage"
[[trigger.http]]
route = "/redis/..."
component = "redis"
[[trigger.http]]
route = "/local/..."
component = "local"
[[trigger.http]]
route = "/..."
component = "echo"
[component.redis]
source = "{kv}"
key_value_stores = ["default"]
[component.local]
source = "{kv}"
key_value_stores = ["local"]
[component.echo]
source = "{echo}"
"#,
        kv = kiln_e2e::guest("wasi_kv_config").display(),
        echo = kiln_e2e::guest("echo_request").display(),
    );
    let rc = format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\n[key_value_store.local]\ntype = \"kiln\"\n", redis.url());
    let app = App::start(&manifest, Some(&rc), &[], &[]);
    let redis_set = |value: &str| app.get(&format!("/redis/{}", query(&[("op", "set"), ("key", "k"), ("value", value)])));
    let local_set = || app.get(&format!("/local/{}", query(&[("op", "set"), ("store", "local"), ("key", "k"), ("value", "v")])));
    assert_eq!(redis_set("before"), (200, "ok".into()));
    assert_eq!(redis.get("k").as_deref(), Some("before"));

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, text) = redis_set("during");
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(10), "a request to a stopped Redis took {elapsed:?}");
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: "), "{text}");
        // Other routes, and other stores, keep working meanwhile.
        assert_eq!(local_set(), (200, "ok".into()));
        assert_eq!(app.get("/echo").0, 200);
    }

    redis.restart();
    let started = Instant::now();
    loop {
        let (status, text) = redis_set("after");
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no recovery after Redis came back: {status} {text}\n{}", app.kiln.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(redis.get("k").as_deref(), Some("after"));
    let get = app.get(&format!("/redis/{}", query(&[("op", "get"), ("key", "k")])));
    assert_eq!(get, (200, "after".into()));
}

#[test]
fn two_apps_do_not_see_each_other_s_default_store() {
    let a = kv_app("spin_kv", Backend::Embedded);
    let b = kv_app("spin_kv", Backend::Embedded);
    assert_eq!(a.q(&[("op", "set"), ("key", "mine"), ("value", "a")]), (200, "ok".into()));
    assert_eq!(b.q(&[("op", "get"), ("key", "mine")]), (404, "none".into()));
    assert_eq!(b.q(&[("op", "keys")]), (200, "".into()));
    assert_eq!(b.q(&[("op", "set"), ("key", "mine"), ("value", "b")]), (200, "ok".into()));
    assert_eq!(a.q(&[("op", "get"), ("key", "mine")]), (200, "a".into()));
    assert_eq!(b.q(&[("op", "get"), ("key", "mine")]), (200, "b".into()));
}

// ---------------------------------------------------------------------------------------------
// The examples, unchanged
// ---------------------------------------------------------------------------------------------

/// Serves an example in place, with its state in a temp dir (never in the repository).
pub(crate) fn example_app(name: &str, extra: &[&str], env: &[(&str, &str)]) -> (Kiln, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["--state-dir".to_string(), state.path().display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kiln = Kiln::up_with_env(&kiln_bin(), &example(name), &args, env);
    (kiln, state)
}

fn send(kiln: &Kiln, method: &str, path: &str, data: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    body(client().request(method, kiln.url(path)).body(data.to_string()).send().expect("request"))
}

fn spin_kv_example_flow(kiln: &Kiln, greeting: &str) {
    assert_eq!(body(kiln.get("/")), (200, format!("{greeting}! You are visitor number 1.\n")));
    assert_eq!(body(kiln.get("/")), (200, format!("{greeting}! You are visitor number 2.\n")));
    assert_eq!(send(kiln, "POST", "/todos", "buy milk"), (201, "1\n".into()));
    assert_eq!(send(kiln, "POST", "/todos", "walk the dog"), (201, "2\n".into()));
    assert_eq!(body(kiln.get("/todos")), (200, "1: buy milk\n2: walk the dog\n".into()));
    assert_eq!(send(kiln, "DELETE", "/todos/1", ""), (200, "deleted\n".into()));
    assert_eq!(send(kiln, "DELETE", "/todos/1", ""), (404, "no such to-do\n".into()));
    assert_eq!(body(kiln.get("/todos")), (200, "2: walk the dog\n".into()));
}

#[test]
fn spin_kv_example_runs_unchanged() {
    let (kiln, _state) = example_app("spin-kv", &[], &[]);
    spin_kv_example_flow(&kiln, "Hello");
    let (kiln, _state) = example_app("spin-kv", &[], &[("KILN_VARIABLE_GREETING", "Howdy")]);
    assert_eq!(body(kiln.get("/")), (200, "Howdy! You are visitor number 1.\n".into()));
}

#[test]
fn spin4_kv_example_runs_unchanged() {
    // The same app for Spin 4 (spin-sdk 7, a WASI 0.3 handler): the same behaviour.
    let (kiln, _state) = example_app("spin4-kv", &[], &[]);
    spin_kv_example_flow(&kiln, "Hello");
    let (kiln, _state) = example_app("spin4-kv", &[], &[("KILN_VARIABLE_GREETING", "Howdy")]);
    assert_eq!(body(kiln.get("/")), (200, "Howdy! You are visitor number 1.\n".into()));
}

#[test]
fn spin_kv_example_on_redis() {
    let redis = RedisServer::start();
    let dir = app_dir("", &[("runtime-config.toml", &format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url()))]);
    let rc = dir.path().join("runtime-config.toml").display().to_string();
    let (kiln, _state) = example_app("spin-kv", &["--runtime-config-file", &rc], &[]);
    spin_kv_example_flow(&kiln, "Hello");
    let keys = redis.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains("visits") && keys.contains("todo:2"), "{keys}");
}

#[test]
fn wasi_keyvalue_example_runs_unchanged() {
    let (kiln, _state) = example_app("wasi-keyvalue", &[], &[]);
    assert_eq!(body(kiln.get("/")), (200, "Hello from wasi:keyvalue (hit 1)\n".into()));
    assert_eq!(body(kiln.get("/")), (200, "Hello from wasi:keyvalue (hit 2)\n".into()));
    assert_eq!(send(&kiln, "PUT", "/kv/color", "blue"), (200, "stored\n".into()));
    assert_eq!(body(kiln.get("/kv/color")), (200, "blue".into()));
    assert_eq!(body(kiln.get("/kv?many=color,size")), (200, "color=blue\nsize: none\n".into()));
    assert_eq!(body(kiln.get("/kv")), (200, "color\nhits\n".into()));
    assert_eq!(send(&kiln, "DELETE", "/kv/color", ""), (200, "deleted\n".into()));
    assert_eq!(body(kiln.get("/kv/color")), (404, "not found\n".into()));
    let (kiln, _state) = example_app("wasi-keyvalue", &[], &[("KILN_VARIABLE_GREETING", "Hi")]);
    assert_eq!(body(kiln.get("/")), (200, "Hi (hit 1)\n".into()));
}

#[test]
fn wasi_keyvalue_example_with_its_runtime_config_on_redis() {
    let redis = RedisServer::start();
    // The example's own runtime-config.toml, pointed at this test's Redis.
    let shipped = std::fs::read_to_string(example("wasi-keyvalue").join("runtime-config.toml")).unwrap();
    let rc = shipped.replace("redis://127.0.0.1:6379", &redis.url());
    assert_ne!(rc, shipped, "the example's runtime-config.toml no longer names redis://127.0.0.1:6379");
    let dir = app_dir("", &[("runtime-config.toml", &rc)]);
    let rc = dir.path().join("runtime-config.toml").display().to_string();
    let (kiln, _state) = example_app("wasi-keyvalue", &["--runtime-config-file", &rc], &[]);
    assert_eq!(body(kiln.get("/")), (200, "Hello from the runtime config (hit 1)\n".into()));
    assert_eq!(send(&kiln, "PUT", "/kv/color", "red"), (200, "stored\n".into()));
    assert_eq!(redis.get("color").as_deref(), Some("red"));
}

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (and the test says SKIPPED) where it cannot be mounted; `KILN_REQUIRE_ROOT=1` (set by
    /// `.ci/run` as root) makes that a failure.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).status();
        match mounted {
            Ok(status) if status.success() => Some(SmallDisk { dir }),
            other if std::env::var_os("KILN_REQUIRE_ROOT").is_some() => panic!("cannot mount a tmpfs (the disk-full test needs root): {other:?}"),
            other => {
                eprintln!("SKIPPED: the disk-full test needs root to mount a tmpfs: {other:?}");
                None
            }
        }
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.dir.path()).status().expect("mount");
        assert!(status.success(), "remount the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// The state directory's disk fills up under writes: each write that does not fit fails with a
/// clear error, everything acknowledged stays readable, and once there is room again writes succeed
/// without a restart; a kill -9 afterwards loses nothing acknowledged.
#[test]
fn a_full_disk_fails_writes_clearly_and_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount("2m") else { return };
    let state = disk.dir.path().display().to_string();
    let mut app = App::start(&kv_manifest("spin_kv", "[\"default\"]", ""), None, &["--state-dir", &state], &[]);
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let key = format!("big{}", acknowledged.len());
        match app.q(&[("op", "set"), ("key", &key), ("size", "65536")]) {
            (200, _) => acknowledged.push(key),
            refused => break refused,
        }
        assert!(acknowledged.len() < 200, "2 MiB never filled up");
    };
    eprintln!("after {} writes of 64 KiB: {refusal:?}", acknowledged.len());
    assert!(acknowledged.len() >= 5, "the disk filled before any write: {refusal:?}");
    assert_eq!(refusal.0, 500, "{refusal:?}");
    assert!(refusal.1.to_lowercase().contains("full") || refusal.1.contains("disk"), "the error says why: {refusal:?}\n{}", app.kiln.log());
    for key in &acknowledged {
        assert_eq!(app.q(&[("op", "get"), ("key", key)]).0, 200, "{key} is still readable on a full disk");
    }
    assert_eq!(app.get("/.well-known/spin/health").0, 200);
    disk.resize("16m");
    assert_eq!(app.q(&[("op", "set"), ("key", "after"), ("size", "65536")]).0, 200, "writes succeed again once there is room");
    acknowledged.push("after".into());
    app.kill9_and_restart();
    let keys: BTreeSet<String> = ok(app.q(&[("op", "keys")])).lines().map(str::to_string).collect();
    for key in &acknowledged {
        assert!(keys.contains(key), "acknowledged write {key} lost");
    }
}
