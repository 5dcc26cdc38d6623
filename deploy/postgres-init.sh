#!/bin/sh
# One database and one user per service (database per service), each user owning its own
# database only. Run by the postgres image on its first start (docker-entrypoint-initdb.d);
# tests/deployment runs it against a local server with BAITIAO_DB_PREFIX set to a
# per-run name. Passwords are passed as psql variables, quoted by psql itself.
set -eu
prefix="${BAITIAO_DB_PREFIX:-baitiao}"
for svc in accounts collections restructuring; do
  upper=$(echo "$svc" | tr '[:lower:]' '[:upper:]')
  eval pass="\${${upper}_DB_PASSWORD}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v name="${prefix}_${svc}" -v pass="$pass" <<'SQL'
CREATE USER :"name" WITH PASSWORD :'pass';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
