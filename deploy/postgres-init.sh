#!/bin/sh
# One database and one user per service (database per service), each user owning its own
# database only; and the desk's: its own database, and read access to the services'
# (it never writes them: its commands go through the bus). Run by the postgres image on
# its first start (docker-entrypoint-initdb.d); tests/deployment runs it against a local
# server with BAITIAO_DB_PREFIX set to a per-run name. Passwords are passed as psql
# variables, quoted by psql itself.
set -eu
prefix="${BAITIAO_DB_PREFIX:-baitiao}"
for svc in accounts collections restructuring desk; do
  upper=$(echo "$svc" | tr '[:lower:]' '[:upper:]')
  eval pass="\${${upper}_DB_PASSWORD}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v name="${prefix}_${svc}" -v pass="$pass" <<'SQL'
CREATE USER :"name" WITH PASSWORD :'pass';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v desk="${prefix}_desk" -v accounts="${prefix}_accounts" \
     -v collections="${prefix}_collections" -v restructuring="${prefix}_restructuring" <<'SQL'
GRANT pg_read_all_data TO :"desk";
GRANT CONNECT ON DATABASE :"accounts", :"collections", :"restructuring" TO :"desk";
SQL
