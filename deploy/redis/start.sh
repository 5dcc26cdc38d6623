#!/bin/sh
# Starts redis-server with one ACL user per component. deploy/redis/users.acl gives each
# user its rights (`baitiao broker users` prints it); its password is the secret
# redis_<user>_password (dashes as underscores) under BAITIAO_REDIS_SECRETS (compose:
# /run/secrets), kept in the ACL as its SHA-256 only. A user whose secret is missing or
# empty stays off. The default user is the administrator's, with the secret redis_password.
# Every argument is passed on to redis-server; the image's own entrypoint starts it (as
# the redis user) when there is one.
set -eu
here=$(dirname "$0")
secrets="${BAITIAO_REDIS_SECRETS:-/run/secrets}"
acl="${BAITIAO_REDIS_ACL_FILE:-/tmp/baitiao-users.acl}"

hash_of() { printf '%s' "$(cat "$1")" | sha256sum | cut -d' ' -f1; }

[ -s "$secrets/redis_password" ] || { echo "start.sh: no secret redis_password in $secrets" >&2; exit 1; }
umask 077
{
  echo "user default on #$(hash_of "$secrets/redis_password") ~* &* +@all"
  grep '^user ' "$here/users.acl" | while read -r _ name rules; do
    secret="$secrets/redis_$(echo "$name" | tr '-' '_')_password"
    if [ -s "$secret" ]; then
      echo "user $name on #$(hash_of "$secret") $rules"
    else
      echo "user $name off $rules"
    fi
  done
} > "$acl"
if command -v docker-entrypoint.sh > /dev/null 2>&1; then
  chown redis "$acl" 2> /dev/null || true
  exec docker-entrypoint.sh redis-server "$@" --aclfile "$acl"
fi
exec redis-server "$@" --aclfile "$acl"
