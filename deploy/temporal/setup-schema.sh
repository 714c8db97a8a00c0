#!/usr/bin/env bash
# Creates Temporal's two PostgreSQL databases when missing, installs the base schema only where
# none exists, and brings both up to the versions this admin-tools image ships. Run by the
# `temporal-schema` service before the server starts; safe to run again (that is how a server
# upgrade gets its schema changes). Every failure stops the script and the stack with it.
set -euo pipefail

: "${SQL_HOST:?}" "${SQL_PORT:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12
export PGPASSWORD="${SQL_PASSWORD}"

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "${SQL_HOST}" -p "${SQL_PORT}" -u "${SQL_USER}" "$@"
}

psql_value() {  # psql_value DATABASE QUERY: the single value the query returns
    psql -h "${SQL_HOST}" -p "${SQL_PORT}" -U "${SQL_USER}" -d "$1" -v ON_ERROR_STOP=1 -tAc "$2"
}

database_exists() {
    [ "$(psql_value postgres "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]
}

schema_installed() {
    [ "$(psql_value "$1" "SELECT to_regclass('public.schema_version') IS NOT NULL")" = t ]
}

setup_database() {  # setup_database NAME SCHEMA_DIR
    local db=$1 dir=$2
    if database_exists "${db}"; then
        echo "database ${db}: exists"
    else
        echo "database ${db}: creating"
        sql_tool --db "${db}" create
    fi
    if schema_installed "${db}"; then
        echo "database ${db}: schema present"
    else
        echo "database ${db}: installing the base schema"
        sql_tool --db "${db}" setup-schema -v 0.0
    fi
    echo "database ${db}: updating the schema from ${SCHEMA_ROOT}/${dir}/versioned"
    sql_tool --db "${db}" update-schema -d "${SCHEMA_ROOT}/${dir}/versioned"
}

until pg_isready -h "${SQL_HOST}" -p "${SQL_PORT}" -U "${SQL_USER}" >/dev/null; do
    echo "waiting for PostgreSQL at ${SQL_HOST}:${SQL_PORT}"
    sleep 1
done
setup_database "${TEMPORAL_DATABASE:-temporal}" temporal
setup_database "${TEMPORAL_VISIBILITY_DATABASE:-temporal_visibility}" visibility
echo "Temporal schema is up to date"
