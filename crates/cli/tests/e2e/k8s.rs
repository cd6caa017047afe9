//! `kiln k8s manifests` against the Kubernetes OpenAPI schemas, offline (`kubernetes-validate`, from
//! PyPI, which ships them), strictly: no unknown field passes.

use crate::kiln_bin;
use std::process::Command;

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let output = Command::new(kiln_bin())
        .args(["k8s", "manifests", "-f", kiln_e2e::examples_dir().join("hello").to_str().unwrap(), "--image", "ghcr.io/example/hello:1.0", "--replicas", "2", "--max-replicas", "5"])
        .output()
        .expect("run kiln k8s manifests");
    let yaml = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for kind in ["kind: \"RuntimeClass\"", "handler: \"kiln\"", "kind: \"Deployment\"", "runtimeClassName: \"kiln\"", "kind: \"Service\"", "kind: \"HorizontalPodAutoscaler\""] {
        assert!(yaml.contains(kind), "{kind} missing from:\n{yaml}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let validated = Command::new("python3").args(["-m", "kubernetes_validate", "--strict", "-k", "1.33.0"]).arg(&file).output().expect("run python3");
    if String::from_utf8_lossy(&validated.stderr).contains("No module named kubernetes_validate") {
        panic!("kubernetes-validate is not installed: pip install kubernetes-validate==1.37.0");
    }
    let report = String::from_utf8_lossy(&validated.stdout).to_string() + &String::from_utf8_lossy(&validated.stderr);
    assert!(validated.status.success() && !report.contains("ERROR"), "{report}\n{yaml}");

    // Bad input names the flag.
    let output = Command::new(kiln_bin()).args(["k8s", "manifests", "-f", kiln_e2e::examples_dir().join("hello").to_str().unwrap(), "--image", "x", "--replicas", "0"]).output().unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("--replicas"));
}
