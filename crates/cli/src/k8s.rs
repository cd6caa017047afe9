//! `kiln k8s manifests`: the Kubernetes objects that run an app under the Kiln containerd shim — a
//! RuntimeClass (`handler: kiln`), a Deployment of the app's image on that runtime class, a Service,
//! and a HorizontalPodAutoscaler — printed as one YAML stream for `kubectl apply -f -`.

mod image;

use anyhow::{Result, bail};
use kiln_manifest::Manifest;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct K8sArgs {
    #[command(subcommand)]
    command: K8sCommand,
}

#[derive(clap::Subcommand)]
enum K8sCommand {
    /// Print a RuntimeClass, Deployment, Service and HorizontalPodAutoscaler for an app.
    Manifests(ManifestsArgs),
    /// Write the app as an OCI image archive for the containerd shim (`ctr images import`, skopeo).
    Image(image::ImageArgs),
}

#[derive(clap::Args)]
struct ManifestsArgs {
    /// The manifest, or a directory containing kiln.toml or spin.toml [default: the current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH")]
    file: Option<PathBuf>,
    /// The app's image (`kiln registry push` it first), e.g. ghcr.io/org/app:1.0.
    #[arg(long, value_name = "REF")]
    image: String,
    /// Name of the Kubernetes objects [default: the app's name as a DNS label].
    #[arg(long)]
    name: Option<String>,
    /// Replicas at start, and the autoscaler's minimum.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// The autoscaler's maximum.
    #[arg(long, default_value_t = 10)]
    max_replicas: u32,
    /// Average CPU utilisation the autoscaler aims for, in percent of the request.
    #[arg(long, default_value_t = 70)]
    cpu_target: u32,
}

pub(crate) fn run(args: K8sArgs) -> Result<()> {
    match args.command {
        K8sCommand::Image(args) => image::run(args),
        K8sCommand::Manifests(args) => {
            let path = kiln_manifest::find_manifest(args.file.as_deref())?;
            let manifest = Manifest::load(&path)?;
            print!("{}", manifests(&manifest, &args)?);
            Ok(())
        }
    }
}

fn manifests(manifest: &Manifest, args: &ManifestsArgs) -> Result<String> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => crate::deploy::dns_label(&manifest.application.name),
    };
    crate::client::check_app_name(&name)?;
    if args.replicas == 0 || args.max_replicas < args.replicas {
        bail!("--replicas must be at least 1 and at most --max-replicas ({})", args.max_replicas);
    }
    if args.image.trim().is_empty() || args.image.contains(char::is_whitespace) {
        bail!("--image `{}` is not an image reference", args.image);
    }
    let labels = json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kiln" });
    let probe = json!({ "httpGet": { "path": "/.well-known/spin/health", "port": "http" }, "periodSeconds": 10 });
    let documents = [
        json!({
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": { "name": "kiln" },
            "handler": "kiln",
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "replicas": args.replicas,
                "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "runtimeClassName": "kiln",
                        // The shim drains in-flight requests on SIGTERM within this.
                        "terminationGracePeriodSeconds": 15,
                        "containers": [{
                            "name": name,
                            "image": args.image,
                            "command": ["/"],
                            "env": [{ "name": "KILN_HTTP_LISTEN_ADDR", "value": "0.0.0.0:80" }],
                            "ports": [{ "name": "http", "containerPort": 80, "protocol": "TCP" }],
                            "readinessProbe": probe,
                            "livenessProbe": probe,
                            "resources": {
                                "requests": { "cpu": "100m", "memory": "64Mi" },
                                "limits": { "memory": "512Mi" },
                            },
                        }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "selector": { "app.kubernetes.io/name": name },
                "ports": [{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }],
            },
        }),
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": args.replicas,
                "maxReplicas": args.max_replicas,
                "metrics": [{
                    "type": "Resource",
                    "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": args.cpu_target } },
                }],
            },
        }),
    ];
    let mut out = String::new();
    for document in &documents {
        out.push_str("---\n");
        yaml(document, 0, &mut out);
    }
    Ok(out)
}

/// Block-style YAML for JSON values: mappings and sequences indented by two spaces, every string
/// double-quoted with JSON escapes (valid YAML, so no value is ever read as another type).
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                out.push_str(&format!("{pad}{key}:"));
                scalar_or_block(value, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // The first key on the dash's line, the rest aligned under it.
                        let mut first = true;
                        for (key, value) in map {
                            if first {
                                out.push_str(&format!(" {key}:"));
                                first = false;
                            } else {
                                out.push_str(&format!("{pad}  {key}:"));
                            }
                            scalar_or_block(value, indent + 2, out);
                        }
                    }
                    other => scalar_or_block(other, indent, out),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar_or_block(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        other => out.push_str(&format!(" {}\n", scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(_) => value.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nests_mappings_and_sequences() {
        let mut out = String::new();
        yaml(&json!({ "a": { "b": 1, "c": ["x", { "d": true, "e": "f" }] }, "g": "h: i" }), 0, &mut out);
        assert_eq!(out, "a:\n  b: 1\n  c:\n    - \"x\"\n    - d: true\n      e: \"f\"\ng: \"h: i\"\n");
    }
}
