#!/bin/sh
# Kubernetes runs shards as a StatefulSet (pod tda-collector-2 of 3) or an Indexed Job
# (JOB_COMPLETION_INDEX=2). With REPLICAS=N set and no SHARD, that index becomes SHARD=<i>/N;
# an explicit SHARD or --shard wins. Without REPLICAS nothing changes (docker run, compose).
set -eu
if [ -z "${SHARD:-}" ] && [ -n "${REPLICAS:-}" ]; then
    index="${JOB_COMPLETION_INDEX:-}"
    if [ -z "$index" ]; then
        pod="${POD_NAME:-$(hostname)}"
        index="${pod##*-}"             # tda-collector-2 -> 2
    fi
    case "$index$REPLICAS" in
        *[!0-9]*)
            echo "entrypoint.sh: cannot derive a shard from index '$index' and REPLICAS '$REPLICAS'" >&2
            exit 2 ;;
    esac
    SHARD="$index/$REPLICAS"
    export SHARD
fi
# exec replaces this shell, so Python runs as PID 1 and receives the container's SIGTERM itself.
exec python -m supervisor "$@"
