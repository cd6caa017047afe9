#!/usr/bin/env bash
# Coverage-guided fuzzing of Kiln's parsers with libFuzzer, through cargo-bolero on nightly Rust.
# The same targets run with random inputs in every `cargo test`; this runs them for longer, guided
# by coverage, and prints the inputs tried per target. A crash stops the run with the input saved
# under the target's `__fuzz__/…/crashes/`: fix it, and keep the input as a test.
#
# Needs: rustup (installs nightly), cargo-bolero (installed here if missing). Knobs: SECONDS_EACH=60,
# TARGETS="kiln-manifest:fuzz::manifest …".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${SECONDS_EACH:-60}
TARGETS=${TARGETS:-"kiln-manifest:fuzz::manifest kiln-manifest:fuzz::manifest_bytes kiln-runtime-config:fuzz::runtime_config kiln-outbound:fuzz::patterns_and_urls kiln-trigger-http:routing::fuzz::routes_and_paths kiln-platform:archive::fuzz::uploads"}

rustup toolchain install nightly --profile minimal >/dev/null
command -v cargo-bolero >/dev/null || cargo install cargo-bolero --locked --no-default-features
cd "$ROOT"
for target in $TARGETS; do
    package=${target%%:*}; test=${target#*:}
    echo "== $package $test ($SECONDS_EACH s)"
    cargo +nightly bolero test -p "$package" "$test" --engine libfuzzer -T "${SECONDS_EACH}s" 2>&1 | grep -E "^#[0-9]+\s+(DONE|pulse)|Done [0-9]+ runs|crash|panicked" | tail -3
done
