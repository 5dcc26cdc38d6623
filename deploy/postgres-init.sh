#!/bin/sh
# One database and one user per service (ARCHITECTURE.md: database per service).
set -eu
for svc in accounts collections restructuring; do
  upper=$(echo "$svc" | tr '[:lower:]' '[:upper:]')
  eval pass="\${${upper}_DB_PASSWORD}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE USER baitiao_${svc} WITH PASSWORD '${pass}';
CREATE DATABASE baitiao_${svc} OWNER baitiao_${svc};
SQL
done
