#!/usr/bin/env bash
# Key-value benchmark: GET and SET through spin-sdk's key-value API, embedded store and Redis,
# against Kiln serving hello in the same run. See run.sh for the method and knobs.
exec env SERVERS="${SERVERS:-kiln kv-get-embedded kv-set-embedded kv-get-redis kv-set-redis}" "$(dirname "$0")/run.sh" "$@"
