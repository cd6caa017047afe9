use super::*;
use kiln_test_support::RedisServer;
use std::time::Instant;

fn instance(allowed: &[&str], timeouts: RedisTimeouts) -> RedisInstance {
    let allowed = AllowedHosts::parse(allowed).unwrap();
    RedisApp::new(timeouts).component_state(&allowed).instance()
}

fn borrow(r: &Resource<RedisConnection>) -> Resource<RedisConnection> {
    Resource::new_borrow(r.rep())
}

fn short() -> RedisTimeouts {
    RedisTimeouts {
        connect: Duration::from_millis(300),
        call: Duration::from_millis(300),
    }
}

#[test]
fn addresses_are_checked_against_allowed_outbound_hosts() {
    // `rediss` has no well-known port (in Spin neither): entries and addresses name it.
    let allowed =
        AllowedHosts::parse(&["redis://127.0.0.1:6379", "rediss://cache.example.com:6380"])
            .unwrap();
    for ok in [
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6379/0",
        "redis://:secret@127.0.0.1:6379",
        "127.0.0.1:6379",
        "rediss://cache.example.com:6380",
        "rediss://user:pw@cache.example.com:6380/2",
    ] {
        assert!(address_allowed(&allowed, ok), "{ok}");
    }
    for denied in [
        "redis://127.0.0.1:6380",
        "redis://127.0.0.2:6379",
        "redis://localhost:6379",
        "rediss://127.0.0.1:6379",
        "redis://cache.example.com:6380",
        "rediss://cache.example.com",
        "rediss://cache.example.com:6379",
        "",
        "not a url",
        "redis://",
        "redis+unix:///tmp/redis.sock",
        "redis://127.0.0.1:99999",
    ] {
        assert!(!address_allowed(&allowed, denied), "{denied}");
    }
    assert!(!address_allowed(
        &AllowedHosts::none(),
        "redis://127.0.0.1:6379"
    ));
    let any = AllowedHosts::parse(&["*://127.0.0.1:*"]).unwrap();
    assert!(address_allowed(&any, "redis://127.0.0.1:1234"));
}

#[tokio::test]
async fn open_is_invalid_address_unless_allowed() {
    let server = RedisServer::start();
    let mut none = instance(&[], RedisTimeouts::default());
    let e = v2::HostConnection::open(&mut none, server.url())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress), "{e:?}");

    let other_port = format!("redis://127.0.0.1:{}", server.port().wrapping_add(1));
    let mut inst = instance(&[&other_port], RedisTimeouts::default());
    let e = v2::HostConnection::open(&mut inst, server.url())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress), "{e:?}");

    // Allowed host, but not a URL the client accepts.
    let mut inst = instance(&[&server.url()], RedisTimeouts::default());
    let bare = format!("127.0.0.1:{}", server.port());
    let e = v2::HostConnection::open(&mut inst, bare).await.unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress), "{e:?}");
    let e = v2::HostConnection::open(&mut inst, "\u{0}garbage".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress), "{e:?}");

    v2::HostConnection::open(&mut inst, server.url())
        .await
        .unwrap();
    v2::HostConnection::open(&mut inst, format!("{}/3", server.url()))
        .await
        .unwrap();
}

#[tokio::test]
async fn v2_operations_against_a_real_redis() {
    use v2::HostConnection as H;
    let server = RedisServer::start();
    let mut inst = instance(&[&server.url()], RedisTimeouts::default());
    let c = H::open(&mut inst, server.url()).await.unwrap();

    assert_eq!(
        H::get(&mut inst, borrow(&c), "missing".into())
            .await
            .unwrap(),
        None
    );
    H::set(&mut inst, borrow(&c), "k".into(), b"\0bytes\xff".to_vec())
        .await
        .unwrap();
    assert_eq!(
        H::get(&mut inst, borrow(&c), "k".into()).await.unwrap(),
        Some(b"\0bytes\xff".to_vec())
    );
    assert_eq!(H::incr(&mut inst, borrow(&c), "n".into()).await.unwrap(), 1);
    assert_eq!(H::incr(&mut inst, borrow(&c), "n".into()).await.unwrap(), 2);
    let e = H::incr(&mut inst, borrow(&c), "k".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::TypeError), "{e:?}");

    let members: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    assert_eq!(
        H::sadd(&mut inst, borrow(&c), "s".into(), members.clone())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        H::sadd(&mut inst, borrow(&c), "s".into(), vec!["a".into()])
            .await
            .unwrap(),
        0
    );
    let mut got = H::smembers(&mut inst, borrow(&c), "s".into())
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, members);
    assert_eq!(
        H::srem(
            &mut inst,
            borrow(&c),
            "s".into(),
            vec!["a".into(), "zz".into()]
        )
        .await
        .unwrap(),
        1
    );
    assert!(
        H::smembers(&mut inst, borrow(&c), "empty".into())
            .await
            .unwrap()
            .is_empty()
    );
    let e = H::sadd(&mut inst, borrow(&c), "k".into(), vec!["x".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::TypeError), "{e:?}");
    let e = H::smembers(&mut inst, borrow(&c), "k".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::TypeError), "{e:?}");
    let e = H::get(&mut inst, borrow(&c), "s".into()).await.unwrap_err();
    assert!(matches!(e, v2::Error::TypeError), "{e:?}");

    H::publish(&mut inst, borrow(&c), "chan".into(), b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(
        H::del(
            &mut inst,
            borrow(&c),
            vec!["k".into(), "n".into(), "nope".into()]
        )
        .await
        .unwrap(),
        2
    );
    let e = H::del(&mut inst, borrow(&c), vec![]).await.unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");

    // execute: parameters and Spin's result mapping (flattened arrays).
    use v2::{RedisParameter as P, RedisResult as R};
    let set = H::execute(
        &mut inst,
        borrow(&c),
        "SET".into(),
        vec![P::Binary(b"x".to_vec()), P::Int64(41)],
    )
    .await
    .unwrap();
    assert_eq!(
        format!("{set:?}"),
        format!("{:?}", vec![R::Status("OK".into())])
    );
    let incr = H::execute(
        &mut inst,
        borrow(&c),
        "INCRBY".into(),
        vec![P::Binary(b"x".to_vec()), P::Int64(1)],
    )
    .await
    .unwrap();
    assert_eq!(format!("{incr:?}"), format!("{:?}", vec![R::Int64(42)]));
    let mget = H::execute(
        &mut inst,
        borrow(&c),
        "mget".into(),
        vec![P::Binary(b"x".to_vec()), P::Binary(b"missing".to_vec())],
    )
    .await
    .unwrap();
    assert_eq!(
        format!("{mget:?}"),
        format!("{:?}", vec![R::Binary(b"42".to_vec()), R::Nil])
    );
    let e = H::execute(&mut inst, borrow(&c), "NOSUCHCOMMAND".into(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(e, v2::Error::Other(ref m) if m.to_lowercase().contains("unknown")),
        "{e:?}"
    );
    let e = H::execute(&mut inst, borrow(&c), "".into(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");

    // A stale or foreign handle is an error, not a panic.
    let bogus = Resource::<RedisConnection>::new_borrow(12345);
    let e = H::get(&mut inst, bogus, "x".into()).await.unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");
    H::drop(&mut inst, c).await.unwrap();
}

#[tokio::test]
async fn per_connection_state_stays_on_its_connection() {
    use v2::HostConnection as H;
    let server = RedisServer::start();
    let mut inst = instance(&[&server.url()], RedisTimeouts::default());
    let a = H::open(&mut inst, server.url()).await.unwrap();
    let b = H::open(&mut inst, server.url()).await.unwrap();
    H::execute(
        &mut inst,
        borrow(&a),
        "SELECT".into(),
        vec![v2::RedisParameter::Int64(5)],
    )
    .await
    .unwrap();
    H::set(&mut inst, borrow(&a), "only-in-5".into(), b"v".to_vec())
        .await
        .unwrap();
    assert_eq!(
        H::get(&mut inst, borrow(&b), "only-in-5".into())
            .await
            .unwrap(),
        None
    );
    assert!(
        H::get(&mut inst, borrow(&a), "only-in-5".into())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn connections_per_instance_are_limited() {
    use v2::HostConnection as H;
    let server = RedisServer::start();
    let mut inst = instance(&[&server.url()], RedisTimeouts::default());
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_INSTANCE {
        open.push(H::open(&mut inst, server.url()).await.unwrap());
    }
    let e = H::open(&mut inst, server.url()).await.unwrap_err();
    assert!(matches!(e, v2::Error::TooManyConnections), "{e:?}");
    H::drop(&mut inst, open.pop().unwrap()).await.unwrap();
    H::open(&mut inst, server.url()).await.unwrap();
}

#[tokio::test]
async fn an_unresponsive_redis_fails_within_the_deadline() {
    use v2::HostConnection as H;
    // Accepts TCP connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut inst = instance(&[&url], short());
    let started = Instant::now();
    let e = H::open(&mut inst, url.clone()).await.unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Nothing listening: an error at once.
    drop(silent);
    let e = H::open(&mut inst, url).await.unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");

    // A command Redis does not answer in time (BLPOP blocks) is cut off.
    let server = RedisServer::start();
    let mut inst = instance(&[&server.url()], short());
    let c = H::open(&mut inst, server.url()).await.unwrap();
    let started = Instant::now();
    let e = H::execute(
        &mut inst,
        borrow(&c),
        "BLPOP".into(),
        vec![
            v2::RedisParameter::Binary(b"never".to_vec()),
            v2::RedisParameter::Int64(5),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // And once Redis is gone, calls fail (bounded) rather than hang.
    drop(server);
    let started = Instant::now();
    let e = H::get(&mut inst, borrow(&c), "k".into()).await.unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn configure_app_and_link() {
    let dir = std::env::temp_dir();
    let manifest = kiln_manifest::Manifest::parse(
        r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = ["redis://127.0.0.1:6379"]
"#,
        &dir.join("spin.toml"),
    )
    .unwrap();
    let variables = Arc::new(kiln_variables::Resolver::new(&manifest, vec![]).unwrap());
    let runtime_config = kiln_runtime_config::RuntimeConfig::default();
    let app = OutboundRedis
        .configure_app(&AppContext {
            manifest: &manifest,
            runtime_config: &runtime_config,
            variables: &variables,
            state_dir: &dir,
            observer: None,
        })
        .unwrap();
    let allowed = AllowedHosts::parse(&["redis://127.0.0.1:6379"]).unwrap();
    let component = manifest.component("c").unwrap();
    let prepared = app
        .component(&ComponentContext {
            manifest: &manifest,
            component,
            allowed_hosts: &allowed,
        })
        .unwrap();
    let mut state = prepared.instance_state();
    let inst = state.downcast_mut::<RedisInstance>().unwrap();
    let e = v2::HostConnection::open(inst, "redis://127.0.0.1:6380".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress));

    // Without component-model concurrency (Kiln's engine today) only 2.0.0 is linked; with it,
    // both are.
    for concurrency in [false, true] {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.concurrency_support(concurrency);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let mut linker = Linker::<KilnState>::new(&engine);
        (OutboundRedis.link())(&mut linker).unwrap();
    }
}
