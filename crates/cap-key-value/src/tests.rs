//! Unit tests: every backend operation (the same suite on the embedded store and on a real
//! `redis-server`), atomicity under concurrency, durability across a `kill -9`, limits, grants and
//! error mapping, app configuration, and linking every interface version together.

use crate::host::{bindings_v2, draft, draft2};
use crate::*;
use kiln_test_support::RedisServer;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Resource;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn embedded(dir: &Path, label: &str) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(&dir.join(format!("{label}.db")), label).unwrap())
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Every operation of the [`Store`] contract, against an empty store.
async fn exercise(store: Arc<dyn Store>) {
    let b = Bucket::new("test", store);
    // get / set / exists / delete
    assert_eq!(b.get(s("a")).await, Ok(None));
    assert_eq!(b.exists(s("a")).await, Ok(false));
    b.set(s("a"), b"one".to_vec()).await.unwrap();
    assert_eq!(b.get(s("a")).await, Ok(Some(b"one".to_vec())));
    assert_eq!(b.exists(s("a")).await, Ok(true));
    b.set(s("a"), b"two".to_vec()).await.unwrap();
    assert_eq!(b.get(s("a")).await, Ok(Some(b"two".to_vec())));
    b.set(s("empty"), Vec::new()).await.unwrap();
    assert_eq!(b.get(s("empty")).await, Ok(Some(Vec::new())));
    assert_eq!(b.exists(s("empty")).await, Ok(true));
    b.delete(s("a")).await.unwrap();
    b.delete(s("a")).await.unwrap(); // deleting an absent key is fine
    assert_eq!(b.get(s("a")).await, Ok(None));
    b.delete(s("empty")).await.unwrap();
    // binary values and unicode keys round-trip
    let binary: Vec<u8> = (0..=255u8).collect();
    b.set(s("bïnary ✓"), binary.clone()).await.unwrap();
    assert_eq!(b.get(s("bïnary ✓")).await, Ok(Some(binary)));
    b.delete(s("bïnary ✓")).await.unwrap();

    // batch: in request order, `None` for absent keys
    b.set_many(vec![(s("x"), b"1".to_vec()), (s("y"), b"2".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        b.get_many(vec![s("y"), s("nope"), s("x")]).await,
        Ok(vec![Some(b"2".to_vec()), None, Some(b"1".to_vec())])
    );
    assert_eq!(b.get_many(vec![]).await, Ok(vec![]));
    b.delete_many(vec![s("x"), s("nope")]).await.unwrap();
    assert_eq!(
        b.get_many(vec![s("x"), s("y")]).await,
        Ok(vec![None, Some(b"2".to_vec())])
    );
    b.delete_many(vec![s("y")]).await.unwrap();

    // increment: absent counts as 0, decimal text, negative deltas, errors on non-numbers/overflow
    assert_eq!(b.increment(s("n"), 5).await, Ok(5));
    assert_eq!(b.increment(s("n"), -7).await, Ok(-2));
    assert_eq!(b.get(s("n")).await, Ok(Some(b"-2".to_vec())));
    b.set(s("n"), b"40".to_vec()).await.unwrap();
    assert_eq!(b.increment(s("n"), 2).await, Ok(42));
    b.set(s("text"), b"hello".to_vec()).await.unwrap();
    let e = b.increment(s("text"), 1).await.unwrap_err();
    assert!(matches!(&e, Error::Other(m) if m.contains("text")), "{e:?}");
    assert_eq!(
        b.get(s("text")).await,
        Ok(Some(b"hello".to_vec())),
        "a failed increment changes nothing"
    );
    b.set(s("big"), i64::MAX.to_string().into_bytes())
        .await
        .unwrap();
    let e = b.increment(s("big"), 1).await.unwrap_err();
    assert!(matches!(&e, Error::Other(_)), "{e:?}");
    b.delete_many(vec![s("n"), s("text"), s("big")])
        .await
        .unwrap();

    // compare-and-swap
    assert_eq!(
        b.compare_and_swap(s("c"), None, b"v1".to_vec()).await,
        Ok(true)
    );
    assert_eq!(
        b.compare_and_swap(s("c"), None, b"v2".to_vec()).await,
        Ok(false)
    );
    assert_eq!(
        b.compare_and_swap(s("c"), Some(b"zz".to_vec()), b"v2".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(b.get(s("c")).await, Ok(Some(b"v1".to_vec())));
    assert_eq!(
        b.compare_and_swap(s("c"), Some(b"v1".to_vec()), b"v2".to_vec())
            .await,
        Ok(true)
    );
    assert_eq!(b.get(s("c")).await, Ok(Some(b"v2".to_vec())));
    // Cas handles: observe, lose a race, retry with the handle returned
    let mut cas = Cas::new(b.clone(), s("c")).await.unwrap();
    assert_eq!(cas.current().await, Ok(Some(b"v2".to_vec())));
    b.set(s("c"), b"other".to_vec()).await.unwrap();
    let mut retry = cas
        .swap(b"mine".to_vec())
        .await
        .unwrap()
        .expect("the swap must fail");
    assert_eq!(retry.current().await, Ok(Some(b"other".to_vec())));
    assert!(retry.swap(b"mine".to_vec()).await.unwrap().is_none());
    assert_eq!(b.get(s("c")).await, Ok(Some(b"mine".to_vec())));
    b.delete(s("c")).await.unwrap();

    // keys: all of them, and in pages with cursors
    assert_eq!(b.get_keys().await, Ok(vec![]));
    let many: Vec<(String, Vec<u8>)> = (0..2500).map(|i| (format!("k{i:05}"), vec![1])).collect();
    b.set_many(many.clone()).await.unwrap();
    let mut all = b.get_keys().await.unwrap();
    all.sort();
    let expected: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(all, expected);
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = b.list_keys(cursor).await.unwrap();
        assert!(
            page.keys.len() <= 2 * store::PAGE_SIZE,
            "a page holds about PAGE_SIZE keys"
        );
        paged.extend(page.keys);
        pages += 1;
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "list_keys never ends");
    }
    paged.sort();
    paged.dedup();
    assert_eq!(paged, expected);
    assert!(pages >= 2, "2500 keys take more than one page");
    b.delete_many(expected).await.unwrap();
    assert_eq!(b.get_keys().await, Ok(vec![]));
}

// ---------------------------------------------------------------------------------------------
// Embedded store

#[test]
fn embedded_supports_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(exercise(embedded(dir.path(), "default")));
}

#[test]
fn embedded_file_is_wal_with_spins_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path(), "default");
    runtime()
        .block_on(store.set(s("k"), b"v".to_vec()))
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("default.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let row: (String, String, Vec<u8>) = conn
        .query_row("SELECT store, key, value FROM spin_key_value", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(row, (s("default"), s("k"), b"v".to_vec()));
}

#[test]
fn labels_sharing_a_file_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, "a").unwrap());
    let b: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, "b").unwrap());
    runtime().block_on(async {
        a.set(s("k"), b"from a".to_vec()).await.unwrap();
        assert_eq!(b.get(s("k")).await, Ok(None));
        assert_eq!(b.get_keys().await, Ok(vec![]));
        assert_eq!(a.get_keys().await, Ok(vec![s("k")]));
    });
}

#[test]
fn embedded_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = embedded(dir.path(), "default");
        store.set(s("kept"), b"yes".to_vec()).await.unwrap();
        assert_eq!(store.increment(s("count"), 3).await, Ok(3));
    });
    // The first store (and its thread) is gone; a new one reads the same file.
    runtime().block_on(async {
        let store = embedded(dir.path(), "default");
        assert_eq!(store.get(s("kept")).await, Ok(Some(b"yes".to_vec())));
        assert_eq!(store.increment(s("count"), 1).await, Ok(4));
    });
}

const CRASH_CHILD: &str = "KILN_KV_TEST_CRASH_CHILD";

/// Acknowledged writes survive `kill -9`: a child process writes, prints an acknowledgement after
/// each write returns, then kills itself with SIGKILL mid-stream; every acknowledged write must be
/// in the file afterwards.
#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(path) = std::env::var(CRASH_CHILD) {
        // The child: never returns.
        let rt = runtime();
        let store = EmbeddedStore::open(Path::new(&path), "default").unwrap();
        rt.block_on(async {
            for i in 0..40 {
                store
                    .set(format!("k{i}"), format!("v{i}").into_bytes())
                    .await
                    .unwrap();
                store.increment(s("count"), 1).await.unwrap();
                println!("ACK {i}");
            }
        });
        let me = std::process::id().to_string();
        let _ = Command::new("kill").args(["-9", &me]).status();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::acknowledged_writes_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &path)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child must die by SIGKILL");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let acked: Vec<usize> =
        // The harness may print its `test … ` prefix on the first line.
        stdout.lines().filter_map(|l| l.split_once("ACK ")).map(|(_, n)| n.trim().parse().unwrap()).collect();
    assert_eq!(acked.len(), 40, "child output: {stdout}");
    // The WAL is replayed on open: every acknowledged write is there.
    let store = embedded_at(&path);
    runtime().block_on(async {
        for i in acked {
            assert_eq!(
                store.get(format!("k{i}")).await,
                Ok(Some(format!("v{i}").into_bytes()))
            );
        }
        assert_eq!(store.get(s("count")).await, Ok(Some(b"40".to_vec())));
    });
}

fn embedded_at(path: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(path, "default").unwrap())
}

/// Increments and compare-and-swaps from many threads, through two separate connections to the same
/// file (as two processes would), lose no update.
#[test]
fn embedded_increment_and_cas_are_atomic_across_threads_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atomic.db");
    let stores = [embedded_at(&path), embedded_at(&path)];
    const THREADS: usize = 8;
    const EACH: usize = 50;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let bucket = Bucket::new("default", stores[t % 2].clone());
            std::thread::spawn(move || {
                runtime().block_on(async {
                    for _ in 0..EACH {
                        bucket.increment(s("counter"), 1).await.unwrap();
                        cas_increment(&bucket, "cas-counter").await;
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    runtime().block_on(async {
        let total = (THREADS * EACH).to_string().into_bytes();
        assert_eq!(stores[0].get(s("counter")).await, Ok(Some(total.clone())));
        assert_eq!(stores[1].get(s("cas-counter")).await, Ok(Some(total)));
    });
}

/// Adds one to a decimal counter with compare-and-swap, retrying on conflict.
async fn cas_increment(bucket: &Bucket, key: &str) {
    let mut cas = Cas::new(bucket.clone(), s(key)).await.unwrap();
    for _ in 0..10_000 {
        let current = cas.current().await.unwrap();
        let n: u64 = current
            .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
            .unwrap_or(0);
        match cas.swap((n + 1).to_string().into_bytes()).await.unwrap() {
            None => return,
            Some(latest) => cas = latest,
        }
    }
    panic!("compare-and-swap never succeeded");
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn keys_and_values_are_limited_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bucket::new("default", embedded(dir.path(), "default"));
    runtime().block_on(async {
        let longest = "k".repeat(MAX_KEY_BYTES);
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        b.set(longest.clone(), b"v".to_vec()).await.unwrap();
        assert_eq!(b.get(longest).await, Ok(Some(b"v".to_vec())));
        let expected = Error::Other(s("key too long: 257 bytes, the limit is 256"));
        assert_eq!(
            b.set(too_long.clone(), b"v".to_vec()).await,
            Err(expected.clone())
        );
        // A key that can never have been written reads as absent.
        assert_eq!(b.get(too_long.clone()).await, Ok(None));
        assert_eq!(b.exists(too_long.clone()).await, Ok(false));
        assert_eq!(b.delete(too_long.clone()).await, Ok(()));
        assert_eq!(
            b.increment(too_long.clone(), 1).await,
            Err(expected.clone())
        );
        assert_eq!(
            b.get_many(vec![s("ok"), too_long.clone()]).await,
            Err(expected.clone())
        );
        assert_eq!(
            b.delete_many(vec![too_long.clone()]).await,
            Err(expected.clone())
        );
        // A CAS handle on such a key reads it as absent; swapping a value in is refused.
        let cas = Cas::new(b.clone(), too_long.clone()).await.unwrap();
        assert_eq!(cas.swap(b"v".to_vec()).await.map(|_| ()), Err(expected.clone()));
        // Multi-byte characters count in bytes.
        let e = b.set("é".repeat(129), b"v".to_vec()).await.unwrap_err();
        assert_eq!(
            e,
            Error::Other(s("key too long: 258 bytes, the limit is 256"))
        );

        let biggest = vec![7u8; MAX_VALUE_BYTES];
        b.set(s("big"), biggest.clone()).await.unwrap();
        assert_eq!(b.get(s("big")).await, Ok(Some(biggest)));
        let e = b
            .set(s("big"), vec![7u8; MAX_VALUE_BYTES + 1])
            .await
            .unwrap_err();
        assert_eq!(
            e,
            Error::Other(s(
                "value too large: 1048577 bytes, the limit is 1048576 (1 MiB)"
            ))
        );
        let e = b
            .set_many(vec![
                (s("a"), vec![]),
                (s("b"), vec![0; MAX_VALUE_BYTES + 1]),
            ])
            .await;
        assert!(e.is_err());
        assert_eq!(
            b.get(s("a")).await,
            Ok(None),
            "a rejected batch writes nothing"
        );
        let e = b
            .compare_and_swap(s("big"), None, vec![0; MAX_VALUE_BYTES + 1])
            .await;
        assert!(matches!(e, Err(Error::Other(m)) if m.starts_with("value too large")));
    });
}

// ---------------------------------------------------------------------------------------------
// Grants and error mapping

fn app_with_default(dir: &Path) -> KeyValueApp {
    KeyValueApp::new(
        [(s("default"), embedded(dir, "default"))]
            .into_iter()
            .collect(),
    )
}

#[test]
fn not_granted_is_access_denied_and_granted_but_unconfigured_is_no_such_store() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_default(dir.path());
    let component = app.component_state(&[s("default"), s("unconfigured")]);
    assert!(component.open("default").is_ok());
    assert_eq!(
        component.open("unconfigured").err(),
        Some(Error::NoSuchStore)
    );
    assert_eq!(component.open("other").err(), Some(Error::AccessDenied));
    assert_eq!(component.open("").err(), Some(Error::AccessDenied));
    // A component with no grants is denied even the default store.
    let none = app.component_state(&[]);
    assert_eq!(none.open("default").err(), Some(Error::AccessDenied));
}

#[test]
fn every_interface_maps_errors_onto_its_own_variants() {
    use draft::wasi::keyvalue::store::Error as DraftError;
    use draft2::wasi::keyvalue::store::Error as Draft2Error;
    use bindings_v2::fermyon::spin::key_value::{Error as SpinError, HostStore as _};
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_default(dir.path());
    let mut inst = app
        .component_state(&[s("default"), s("unconfigured")])
        .instance();
    runtime().block_on(async {
        // fermyon:spin/key-value@2.0.0
        let r = bindings_v2::fermyon::spin::key_value::HostStore::open(&mut inst, s("nope")).await.unwrap();
        assert!(matches!(r, Err(SpinError::AccessDenied)));
        let r = bindings_v2::fermyon::spin::key_value::HostStore::open(&mut inst, s("unconfigured"))
            .await
            .unwrap();
        assert!(matches!(r, Err(SpinError::NoSuchStore)));
        let store = bindings_v2::fermyon::spin::key_value::HostStore::open(&mut inst, s("default"))
            .await
            .unwrap()
            .unwrap();
        let r = inst.set(Resource::new_borrow(store.rep()), "k".repeat(300), vec![]).await.unwrap();
        assert!(matches!(r, Err(SpinError::Other(m)) if m == "key too long: 300 bytes, the limit is 256"));
        inst.set(Resource::new_borrow(store.rep()), s("k"), b"v".to_vec()).await.unwrap().unwrap();
        let keys = inst.get_keys(Resource::new_borrow(store.rep())).await.unwrap().unwrap();
        assert_eq!(keys, vec![s("k")]);
        bindings_v2::fermyon::spin::key_value::HostStore::drop(&mut inst, store).await.unwrap();

        // wasi:keyvalue@0.2.0-draft2
        let r = draft2::wasi::keyvalue::store::Host::open(&mut inst, s("nope")).await.unwrap();
        assert!(matches!(r, Err(Draft2Error::AccessDenied)));
        let r = draft2::wasi::keyvalue::store::Host::open(&mut inst, s("unconfigured")).await.unwrap();
        assert!(matches!(r, Err(Draft2Error::NoSuchStore)));
        assert!(draft2::wasi::keyvalue::store::Host::open(&mut inst, s("default")).await.unwrap().is_ok());

        // wasi:keyvalue@0.2.0-draft
        let r = draft::wasi::keyvalue::store::Host::open(&mut inst, s("nope")).await.unwrap();
        assert!(matches!(r, Err(DraftError::AccessDenied)));
        let r = draft::wasi::keyvalue::store::Host::open(&mut inst, s("unconfigured")).await.unwrap();
        assert!(matches!(r, Err(DraftError::NoSuchStore)));
        assert!(draft::wasi::keyvalue::store::Host::open(&mut inst, s("default")).await.unwrap().is_ok());
    });
}

#[test]
fn wasmcloud_bucket_empty_is_the_linked_store_and_grants_still_hold() {
    use draft::wasi::keyvalue::store::{Error as DraftError, Host as _};
    let dir = tempfile::tempdir().unwrap();
    let app = KeyValueApp::new(
        [(s("default"), embedded(dir.path(), "default")), (s("cache"), embedded(dir.path(), "cache"))]
            .into_iter()
            .collect(),
    );
    let mut inst = app.component_state(&[s("default"), s("cache")]).instance();
    assert!(inst.has_link("default") && inst.has_link("cache") && !inst.has_link("secret"));
    assert_eq!(inst.linked_label(""), "default");
    assert_eq!(inst.linked_label("cache"), "cache");
    inst.select_link("cache");
    assert_eq!(inst.linked_label(""), "cache");
    assert_eq!(inst.linked_label("default"), "default");
    inst.select_link("secret");
    runtime().block_on(async {
        // An ungranted link: `""` is denied on use, like the label itself.
        let r = inst.open(s("")).await.unwrap();
        assert!(matches!(r, Err(DraftError::AccessDenied)));
        inst.select_link("default");
        assert!(inst.open(s("")).await.unwrap().is_ok());
    });
    // Without a grant of `default`, `""` is denied too.
    let mut none = app.component_state(&[s("cache")]).instance();
    runtime().block_on(async {
        assert!(matches!(none.open(s("")).await.unwrap(), Err(DraftError::AccessDenied)));
    });
    // Spin's own interface keeps `""` as a label: denied.
    assert_eq!(app.component_state(&[s("default")]).open("").err(), Some(Error::AccessDenied));
}

#[test]
fn wasi_interfaces_work_through_the_host_functions() {
    use draft2::wasi::keyvalue::atomics::{CasError, Host as _, HostCas as _};
    use draft2::wasi::keyvalue::batch::Host as _;
    use draft2::wasi::keyvalue::store::{Host as _, HostBucket as _};
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_default(dir.path());
    let mut inst = app.component_state(&[s("default")]).instance();
    runtime().block_on(async {
        let bucket = inst.open(s("default")).await.unwrap().unwrap();
        let b = || Resource::<Bucket>::new_borrow(bucket.rep());
        inst.set(b(), s("a"), b"1".to_vec()).await.unwrap().unwrap();
        assert_eq!(inst.increment(b(), s("a"), 41).await.unwrap().unwrap(), 42);
        let got = inst
            .get_many(b(), vec![s("a"), s("zz")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![(s("a"), Some(b"42".to_vec())), (s("zz"), None)]);
        // list-keys: a cursor that is not ours is an error value, not a trap
        let r = inst.list_keys(b(), Some(s("garbage"))).await.unwrap();
        assert!(matches!(
            r,
            Err(draft2::wasi::keyvalue::store::Error::Other(_))
        ));
        let page = inst.list_keys(b(), None).await.unwrap().unwrap();
        assert_eq!((page.keys, page.cursor), (vec![s("a")], None));
        // CAS through handles
        let cas = inst.new(b(), s("a")).await.unwrap().unwrap();
        assert_eq!(
            inst.current(Resource::new_borrow(cas.rep()))
                .await
                .unwrap()
                .unwrap(),
            Some(b"42".to_vec())
        );
        inst.set(b(), s("a"), b"changed".to_vec())
            .await
            .unwrap()
            .unwrap();
        let retry = match inst.swap(cas, b"x".to_vec()).await.unwrap() {
            Err(CasError::CasFailed(retry)) => retry,
            _ => panic!("the swap must fail"),
        };
        assert_eq!(
            inst.current(Resource::new_borrow(retry.rep()))
                .await
                .unwrap()
                .unwrap(),
            Some(b"changed".to_vec())
        );
        assert!(inst.swap(retry, b"x".to_vec()).await.unwrap().is_ok());
        assert_eq!(
            inst.get(b(), s("a")).await.unwrap().unwrap(),
            Some(b"x".to_vec())
        );
        assert_eq!(inst.open_cas, 0, "swapped handles are gone from the table");
    });
}

/// The wasmCloud draft: unsigned increment, numeric cursor, `option<tuple>` batch results.
#[test]
fn wasi_draft_interface_works_through_the_host_functions() {
    use draft::wasi::keyvalue::atomics::Host as _;
    use draft::wasi::keyvalue::batch::Host as _;
    use draft::wasi::keyvalue::store::{Host as _, HostBucket as _};
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_default(dir.path());
    let mut inst = app.component_state(&[s("default")]).instance();
    runtime().block_on(async {
        let bucket = inst.open(s("default")).await.unwrap().unwrap();
        let b = || Resource::<Bucket>::new_borrow(bucket.rep());
        assert_eq!(inst.increment(b(), s("u"), 3).await.unwrap().unwrap(), 3);
        assert!(
            inst.increment(b(), s("u"), u64::MAX)
                .await
                .unwrap()
                .is_err()
        );
        inst.set(b(), s("neg"), b"-5".to_vec())
            .await
            .unwrap()
            .unwrap();
        let r = inst.increment(b(), s("neg"), 1).await.unwrap();
        assert!(matches!(
            r,
            Err(draft::wasi::keyvalue::store::Error::Other(_))
        ));
        let got = inst
            .get_many(b(), vec![s("u"), s("zz")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![Some((s("u"), b"3".to_vec())), None]);
        let page = inst.list_keys(b(), None).await.unwrap().unwrap();
        assert_eq!(page.keys.len(), 2);
        assert_eq!(page.cursor, None);
        let page = inst.list_keys(b(), Some(u64::MAX)).await.unwrap().unwrap();
        assert_eq!(page.keys, Vec::<String>::new());
        inst.delete_many(b(), vec![s("u"), s("neg")])
            .await
            .unwrap()
            .unwrap();
        assert!(!inst.exists(b(), s("u")).await.unwrap().unwrap());
    });
}

#[test]
fn too_many_open_stores_is_store_table_full() {
    use bindings_v2::fermyon::spin::key_value::{Error as SpinError, HostStore};
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_default(dir.path());
    let mut inst = app.component_state(&[s("default")]).instance();
    runtime().block_on(async {
        let mut handles = Vec::new();
        for _ in 0..MAX_OPEN_HANDLES {
            handles.push(
                HostStore::open(&mut inst, s("default"))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let r = HostStore::open(&mut inst, s("default")).await.unwrap();
        assert!(matches!(r, Err(SpinError::StoreTableFull)));
        // Closing one makes room again.
        HostStore::drop(&mut inst, handles.pop().unwrap())
            .await
            .unwrap();
        assert!(
            HostStore::open(&mut inst, s("default"))
                .await
                .unwrap()
                .is_ok()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// App configuration

fn manifest(dir: &Path) -> kiln_manifest::Manifest {
    let text = r#"spin_manifest_version = 2
[application]
name = "app"

[[trigger.http]]
route = "/a"
component = "a"

[[trigger.http]]
route = "/b"
component = "b"

[component.a]
source = "a.wasm"
key_value_stores = ["default", "cache", "unconfigured"]

[component.b]
source = "b.wasm"
"#;
    kiln_manifest::Manifest::parse(text, &dir.join("spin.toml")).unwrap()
}

fn configure(dir: &Path, state_dir: &Path) -> Box<dyn kiln_app::AppCapability> {
    let manifest = manifest(dir);
    let mut runtime_config = kiln_runtime_config::RuntimeConfig {
        path: Some(dir.join("runtime-config.toml")),
        ..Default::default()
    };
    runtime_config.key_value_stores.insert(
        s("cache"),
        kiln_runtime_config::KeyValueStoreConfig::Embedded {
            path: Some("data/cache.db".into()),
        },
    );
    let variables = Arc::new(kiln_variables::Resolver::new(&manifest, Vec::new()).unwrap());
    KeyValue
        .configure_app(&kiln_app::AppContext {
            manifest: &manifest,
            runtime_config: &runtime_config,
            variables: &variables,
            state_dir,
            observer: None,
        })
        .unwrap()
}

fn component_of(app: &dyn kiln_app::AppCapability, dir: &Path, id: &str) -> KeyValueInstance {
    let manifest = manifest(dir);
    let hosts = kiln_outbound::AllowedHosts::none();
    let state = app
        .component(&kiln_app::ComponentContext {
            manifest: &manifest,
            component: &manifest.components[id],
            allowed_hosts: &hosts,
        })
        .unwrap()
        .instance_state();
    *state.downcast::<KeyValueInstance>().unwrap()
}

#[test]
fn configure_app_opens_granted_stores_from_runtime_config_and_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".kiln");
    let app = configure(dir.path(), &state);
    assert!(
        state.join("key_value/default.db").exists(),
        "`default` lives in the state dir"
    );
    assert!(
        dir.path().join("data/cache.db").exists(),
        "`path` is relative to the runtime config"
    );
    let a = component_of(&*app, dir.path(), "a");
    assert!(a.grants.open("default").is_ok());
    assert!(a.grants.open("cache").is_ok());
    assert_eq!(
        a.grants.open("unconfigured").err(),
        Some(Error::NoSuchStore)
    );
    assert_eq!(a.grants.open("other").err(), Some(Error::AccessDenied));
    let b = component_of(&*app, dir.path(), "b");
    assert_eq!(b.grants.open("default").err(), Some(Error::AccessDenied));
}

#[test]
fn apps_are_isolated_by_their_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let one = configure(dir.path(), &dir.path().join("one"));
    let two = configure(dir.path(), &dir.path().join("two"));
    let b1 = component_of(&*one, dir.path(), "a")
        .grants
        .open("default")
        .unwrap();
    let b2 = component_of(&*two, dir.path(), "a")
        .grants
        .open("default")
        .unwrap();
    runtime().block_on(async {
        b1.set(s("k"), b"one".to_vec()).await.unwrap();
        assert_eq!(b2.get(s("k")).await, Ok(None));
    });
}

#[test]
fn a_bad_redis_url_fails_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path());
    let mut runtime_config = kiln_runtime_config::RuntimeConfig::default();
    runtime_config.key_value_stores.insert(
        s("cache"),
        kiln_runtime_config::KeyValueStoreConfig::Redis {
            url: s("http://not-redis"),
        },
    );
    let variables = Arc::new(kiln_variables::Resolver::new(&manifest, Vec::new()).unwrap());
    let e = KeyValue
        .configure_app(&kiln_app::AppContext {
            manifest: &manifest,
            runtime_config: &runtime_config,
            variables: &variables,
            state_dir: &dir.path().join(".kiln"),
            observer: None,
        })
        .err()
        .expect("an invalid URL is a load error");
    assert!(format!("{e:#}").contains("cache"), "{e:#}");
}

// ---------------------------------------------------------------------------------------------
// Linking

/// A component importing every interface version at once links against Kiln's linker: the
/// `0.2.0-draft` and `0.2.0-draft2` packages do not collide, and the types match the WIT.
#[test]
fn every_interface_version_links_side_by_side() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut resolve = wit_parser::Resolve::default();
    for package in ["spin@2.0.0", "keyvalue-2024-10-17", "keyvalue@0.2.0-draft"] {
        resolve.push_path(wit.join(package)).unwrap();
    }
    let world_pkg = resolve
        .push_str(
            "test.wit",
            "package test:kv;
             world guest {
                 import fermyon:spin/key-value@2.0.0;
                 import wasi:keyvalue/store@0.2.0-draft2;
                 import wasi:keyvalue/atomics@0.2.0-draft2;
                 import wasi:keyvalue/batch@0.2.0-draft2;
                 import wasi:keyvalue/store@0.2.0-draft;
                 import wasi:keyvalue/atomics@0.2.0-draft;
                 import wasi:keyvalue/batch@0.2.0-draft;
             }",
        )
        .unwrap();
    let world = resolve.select_world(&[world_pkg], Some("guest")).unwrap();
    let mut module = wit_component::dummy_module(
        &resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();

    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, &component).unwrap();
    let mut linker = wasmtime::component::Linker::<kiln_engine::KilnState>::new(&engine);
    assert!(
        linker.instantiate_pre(&component).is_err(),
        "the guest needs our interfaces"
    );
    host::link(&mut linker).unwrap();
    linker.instantiate_pre(&component).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Redis (a real redis-server on a free loopback port)

fn redis_store(url: &str) -> Arc<dyn Store> {
    Arc::new(RedisStore::new(url, RedisRuntime::new().unwrap()).unwrap())
}

#[test]
fn redis_supports_every_operation() {
    let server = RedisServer::start();
    runtime().block_on(exercise(redis_store(&server.url())));
}

#[test]
fn redis_increment_and_cas_are_atomic_across_threads() {
    let server = RedisServer::start();
    let store = redis_store(&server.url());
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let bucket = Bucket::new("default", store.clone());
            std::thread::spawn(move || {
                runtime().block_on(async {
                    for _ in 0..EACH {
                        bucket.increment(s("counter"), 1).await.unwrap();
                        cas_increment(&bucket, "cas-counter").await;
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    runtime().block_on(async {
        let total = (THREADS * EACH).to_string().into_bytes();
        assert_eq!(store.get(s("counter")).await, Ok(Some(total.clone())));
        assert_eq!(store.get(s("cas-counter")).await, Ok(Some(total)));
    });
}

/// A Redis that stops answering gives an error within the call timeout; one that is down gives an
/// error at once; once it is back, calls succeed again on the same store (no restart).
#[test]
fn redis_outage_is_a_bounded_error_and_recovers() {
    let server = RedisServer::start();
    let port = server.port();
    let store = redis_store(&server.url());
    let rt = runtime();
    rt.block_on(async {
        store.set(s("k"), b"v".to_vec()).await.unwrap();

        // Frozen (SIGSTOP): the call times out.
        server.signal("-STOP");
        let started = Instant::now();
        let e = store.get(s("k")).await.unwrap_err();
        let took = started.elapsed();
        server.signal("-CONT");
        assert!(
            took < CALL_TIMEOUT + Duration::from_secs(2),
            "took {took:?}"
        );
        assert!(
            matches!(&e, Error::Unavailable(m) if m.contains("Redis")),
            "{e:?}"
        );
        eventually(|| async { store.get(s("k")).await == Ok(Some(b"v".to_vec())) }).await;

        // Gone: errors, bounded.
        drop(server);
        let started = Instant::now();
        let e = store.set(s("k"), b"w".to_vec()).await.unwrap_err();
        assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_secs(2));
        assert!(
            matches!(&e, Error::Unavailable(m) if m.contains("Redis")),
            "{e:?}"
        );

        // Back on the same port: the same store works again.
        let _server = RedisServer::start_on(port);
        eventually(|| async { store.set(s("k"), b"back".to_vec()).await.is_ok() }).await;
        assert_eq!(store.get(s("k")).await, Ok(Some(b"back".to_vec())));
    });
}

async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "did not recover within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn redis_password_is_not_shown() {
    let rt = RedisRuntime::new().unwrap();
    let store = RedisStore::new("redis://user:hunter2@127.0.0.1:1/0", rt).unwrap();
    assert_eq!(store.describe(), "Redis at redis://user:***@127.0.0.1:1/0");
}
