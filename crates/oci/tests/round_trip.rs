//! pack → (no registry) → materialize: the app Kiln loads from a pulled artifact says what the
//! original manifest said.

use kiln_manifest::{ComponentSource, FileMount, HttpRoute, Manifest};
use kiln_oci::locked::{DATA_LAYER_MEDIA_TYPE, LOCKED_APP_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use kiln_oci::materialize::{Blobs, materialize};
use std::collections::HashMap;
use std::path::PathBuf;

struct Dir(HashMap<String, PathBuf>);

impl Blobs for Dir {
    fn blob(&self, digest: &str) -> anyhow::Result<PathBuf> {
        self.0.get(digest).cloned().ok_or_else(|| anyhow::anyhow!("no blob {digest}"))
    }
}

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "shop"
version = "2.0.0"
description = "a shop"

[application.trigger.redis]
address = "redis://{{ redis_host }}:6379"

[application.tool.kiln]
max_concurrency = 7

[variables]
redis_host = { default = "localhost" }
api_key = { required = true, secret = true }

[[trigger.http]]
route = "/cart/..."
component = "cart"

[[trigger.http]]
route = { private = true }
component = "audit"

[[trigger.redis]]
channel = "orders"
component = "audit"

[[trigger.cron]]
interval = "5s"
component = "audit"

[component.cart]
source = "cart.wasm"
files = [{ source = "assets", destination = "/static" }]
allowed_outbound_hosts = ["https://api.example.com", "http://self"]
key_value_stores = ["default", "carts"]
sqlite_databases = ["default"]
environment = { MODE = "prod" }

[component.cart.variables]
key = "{{ api_key }}"

[component.cart.tool.kiln]
allowed_publish_subjects = ["orders.>"]

[component.audit]
source = "audit.wasm"
"#;

#[test]
fn a_packed_app_materializes_to_the_same_app() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), MANIFEST).unwrap();
    // Two components built from one Wasm: one layer.
    std::fs::write(dir.path().join("cart.wasm"), b"\0asm not really, but bytes").unwrap();
    std::fs::write(dir.path().join("audit.wasm"), b"\0asm not really, but bytes").unwrap();
    std::fs::create_dir_all(dir.path().join("assets/css")).unwrap();
    std::fs::write(dir.path().join("assets/css/site.css"), "body { color: black; }\n".repeat(20)).unwrap();
    std::fs::write(dir.path().join("assets/tiny.txt"), "tiny").unwrap();
    let original = Manifest::load(&dir.path().join("spin.toml")).unwrap();

    let packed = kiln_oci::pack(&original).unwrap();
    let types: Vec<&str> = packed.layers.iter().map(|l| l.media_type).collect();
    assert_eq!(types, [WASM_LAYER_MEDIA_TYPE, DATA_LAYER_MEDIA_TYPE, LOCKED_APP_MEDIA_TYPE]);

    let blobs = tempfile::tempdir().unwrap();
    let mut by_digest = HashMap::new();
    for layer in &packed.layers {
        let path = blobs.path().join(layer.digest.replace(':', "_"));
        std::fs::write(&path, &layer.data).unwrap();
        by_digest.insert(layer.digest.clone(), path);
    }
    let out = tempfile::tempdir().unwrap();
    let manifest_path = materialize(&packed.locked, &Dir(by_digest), &out.path().join("app")).unwrap();
    let pulled = Manifest::load(&manifest_path).unwrap();

    assert_eq!(pulled.application.name, "shop");
    assert_eq!(pulled.application.version.as_deref(), Some("2.0.0"));
    assert_eq!(pulled.application.redis_address.as_deref(), Some("redis://{{ redis_host }}:6379"));
    assert_eq!(pulled.application.limits.max_concurrency, Some(7));
    assert_eq!(pulled.variables.len(), 2);
    assert_eq!(pulled.http_triggers.len(), 2);
    assert!(matches!(&pulled.http_triggers[0].route, HttpRoute::Path { route, .. } if route == "/cart/..."));
    assert!(matches!(pulled.http_triggers[1].route, HttpRoute::Private));
    assert_eq!((pulled.redis_triggers[0].channel.as_str(), pulled.redis_triggers[0].component.as_str()), ("orders", "audit"));
    assert_eq!(pulled.cron_triggers.len(), 1);
    let cart = &pulled.components["cart"];
    let patterns: Vec<&str> = cart.allowed_outbound_hosts.iter().map(|h| h.pattern.as_str()).collect();
    assert_eq!(patterns, ["https://api.example.com", "http://self"]);
    assert_eq!(cart.key_value_stores, ["default", "carts"]);
    assert_eq!(cart.sqlite_databases, ["default"]);
    assert_eq!(cart.environment, [("MODE".to_string(), "prod".to_string())]);
    assert_eq!(cart.allowed_publish_subjects.as_ref().map(|s| s.len()), Some(1));
    assert!(cart.variables.contains_key("key"));
    let ComponentSource::Local(wasm) = &cart.source else { panic!("local source") };
    assert_eq!(std::fs::read(wasm).unwrap(), b"\0asm not really, but bytes");
    let [FileMount::Directory { source, destination }] = cart.files.as_slice() else { panic!("{:?}", cart.files) };
    assert_eq!(destination, "/");
    assert_eq!(std::fs::read_to_string(source.join("static/tiny.txt")).unwrap(), "tiny");
    assert_eq!(std::fs::read_to_string(source.join("static/css/site.css")).unwrap(), "body { color: black; }\n".repeat(20));
}
