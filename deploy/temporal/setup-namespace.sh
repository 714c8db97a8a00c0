#!/usr/bin/env bash
# Creates the namespace when missing and registers each of Spark's search attributes that is not
# registered yet (SPARK_SEARCH_ATTRIBUTES: "Name=Type ...", the list in spark/temporal.py; a test
# keeps the two equal). Run by the `temporal-setup` service once the server is up; safe to run
# again. Every failure stops the script, and the workers never start on a half-set-up cluster.
set -euo pipefail

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${SPARK_SEARCH_ATTRIBUTES:?}"
RETENTION=${TEMPORAL_NAMESPACE_RETENTION:-72h}

wait_until() {  # wait_until WHAT COMMAND...: retry for SETUP_WAIT_S (60) s, then fail naming WHAT
    local what=$1 tries=0
    shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "${tries}" -ge "${SETUP_WAIT_S:-60}" ]; then
            echo "gave up waiting for ${what}; last attempt:" >&2
            "$@"
            return 1
        fi
        echo "waiting for ${what}"
        sleep 1
    done
}

ensure_namespace() {
    if temporal operator namespace describe --namespace "${TEMPORAL_NAMESPACE}" >/dev/null 2>&1; then
        echo "namespace ${TEMPORAL_NAMESPACE}: exists"
    else
        echo "namespace ${TEMPORAL_NAMESPACE}: creating (retention ${RETENTION})"
        temporal operator namespace create --namespace "${TEMPORAL_NAMESPACE}" --retention "${RETENTION}"
    fi
}

ensure_search_attributes() {
    local registered pair name kind
    registered=$(temporal operator search-attribute list --namespace "${TEMPORAL_NAMESPACE}")
    for pair in ${SPARK_SEARCH_ATTRIBUTES}; do
        name=${pair%%=*}
        kind=${pair#*=}
        if awk '{print $1}' <<<"${registered}" | grep -Fqx "${name}"; then
            echo "search attribute ${name}: registered"
        else
            echo "search attribute ${name}: registering as ${kind}"
            temporal operator search-attribute create --namespace "${TEMPORAL_NAMESPACE}" \
                --name "${name}" --type "${kind}"
        fi
    done
}

wait_until "the Temporal server at ${TEMPORAL_ADDRESS}" temporal operator cluster health
ensure_namespace
wait_until "namespace ${TEMPORAL_NAMESPACE}" \
    temporal operator search-attribute list --namespace "${TEMPORAL_NAMESPACE}"
ensure_search_attributes
echo "namespace ${TEMPORAL_NAMESPACE} is ready"
