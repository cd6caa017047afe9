#!/usr/bin/env bash
# Container start to first 200 under containerd: the examples/hello app in an image made by
# `kiln k8s image`, run by the Kiln shim (`--runtime io.containerd.kiln.v1`), next to a Linux
# container (runc) of the native hyper server (bench/native-hello and its shared libraries), in the
# same run and the same containerd. Both warm: the image is unpacked and (for Kiln) precompiled by a
# first start before timing. Each start: `ctr run --detach --net-host` → polled GET / → SIGKILL,
# delete. Median of STARTS starts. Target (issue #13): Kiln ≤ 100 ms warm.
#
# Needs root, containerd and runc (apt-get install containerd runc).
# Environment: STARTS=11; SKIP_BUILD=1; CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STARTS=${STARTS:-11}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/containerd: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "containerd needs root"
for b in containerd ctr runc; do command -v $b >/dev/null || die "$b is not installed (apt-get install containerd runc)"; done
WORK=$(mktemp -d /tmp/kiln-ctrd-bench.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p kiln -p kiln-shim -p native-hello)
    (cd "$ROOT/examples" && env -u CARGO_TARGET_DIR cargo build --target wasm32-wasip2 --release -p hello)
fi
for b in kiln containerd-shim-kiln-v1 native-hello; do [[ -x $BIN/$b ]] || die "$BIN/$b not found"; done

cat >"$WORK/config.toml" <<TOML
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/c.sock"
[ttrpc]
  address = "$WORK/c.sock.ttrpc"
TOML
PATH="$BIN:$PATH" containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
PIDS+=("$!")
ctr() { command ctr --address "$WORK/c.sock" --namespace bench "$@"; }
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done

# The Kiln image, and a Linux image of the native server: its binary, its libraries, the loader.
"$BIN/kiln" k8s image -f "$ROOT/examples/hello" --name docker.io/bench/hello-kiln:1 -o "$WORK/kiln.tar" 2>/dev/null
mkdir -p "$WORK/linux"
cp "$BIN/native-hello" "$WORK/linux/"
for lib in $(ldd "$BIN/native-hello" | grep -o '/[^ ]*'); do mkdir -p "$WORK/linux$(dirname "$lib")"; cp -L "$lib" "$WORK/linux$lib"; done
python3 - "$WORK/linux" "$WORK/linux.tar" <<'PY'
import hashlib, io, json, sys, tarfile
root, out = sys.argv[1], sys.argv[2]
def digest(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def tar(add):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t: add(t)
    return buf.getvalue()
layer = tar(lambda t: t.add(root, arcname="."))
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/native-hello"]},
                     "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}]}).encode()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": digest(manifest), "size": len(manifest), "annotations": {"io.containerd.image.name": "docker.io/bench/hello-linux:1"}}]}).encode()
def layout(t):
    for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + \
            [("blobs/sha256/" + digest(b)[7:], b) for b in (layer, config, manifest)]:
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
open(out, "wb").write(tar(layout))
PY
ctr images import "$WORK/kiln.tar" >/dev/null
ctr images import "$WORK/linux.tar" >/dev/null

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
N=0
# start KIND: µs from `ctr run` to the first 200 on GET /.
start() {
    local port t0 t1 id
    port=$(free_port)
    N=$((N + 1))
    id=bench-$N
    t0=$(now_us)
    case $1 in
        kiln) ctr run --detach --net-host --runtime io.containerd.kiln.v1 --env "KILN_HTTP_LISTEN_ADDR=127.0.0.1:$port" \
                  docker.io/bench/hello-kiln:1 "$id" >/dev/null 2>&1 ;;
        linux) ctr run --detach --net-host docker.io/bench/hello-linux:1 "$id" /native-hello --listen "127.0.0.1:$port" >/dev/null 2>&1 ;;
    esac
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null) == 200 ]]; do
        (($(now_us) - t0 < 60000000)) || { tail -20 "$WORK/containerd.log" >&2; die "$1 container never answered"; }
    done
    t1=$(now_us)
    ctr task kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
    for _ in $(seq 200); do ctr task delete "$id" >/dev/null 2>&1 && break; sleep 0.02; done
    ctr container delete "$id" >/dev/null 2>&1 || true
    echo $((t1 - t0))
}

start kiln >/dev/null   # unpacks and precompiles
start linux >/dev/null  # unpacks
declare -A MEDIAN
for kind in kiln linux; do
    samples=()
    for ((i = 0; i < STARTS; i++)); do samples+=("$(start $kind)"); done
    MEDIAN[$kind]=$(median "${samples[@]}")
    log "$kind: median ${MEDIAN[$kind]} µs (samples: ${samples[*]})"
done
for id in $(ctr container ls -q); do ctr task kill --signal SIGKILL "$id" >/dev/null 2>&1 || true; done
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
awk -v k="${MEDIAN[kiln]}" -v l="${MEDIAN[linux]}" -v n="$STARTS" -v commit="$commit" 'BEGIN {
    printf "Container start to first 200 under containerd 1.6 (ctr run --detach --net-host), commit %s, median of %d warm starts\n\n", commit, n
    printf "| container | start → first 200 | vs Linux container |\n|---|---|---|\n"
    printf "| Kiln shim, examples/hello (precompiled) | %.1f ms | %.2f× |\n", k / 1000, k / l
    printf "| runc, native hyper server (bench/native-hello) | %.1f ms | 1× |\n", l / 1000
}'
