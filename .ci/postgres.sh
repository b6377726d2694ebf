#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the run-store tests (Debian's postgresql package).
#   eval "$(.ci/postgres.sh start)"   -> exports MEMPROG_TEST_PG_URL and MEMPROG_TEST_PG_DIR
#   .ci/postgres.sh stop DIR          -> stops the cluster and removes DIR
# Runs the server as the `postgres` user (created by the package); needs root.
set -euo pipefail
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
case "${1:-}" in
start)
  dir="$(mktemp -d /tmp/memprog-pg.XXXXXX)"
  chmod 755 "$dir"
  echo memprog >"$dir/pw"
  chown -R postgres "$dir"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  su postgres -s /bin/sh -c "'$PGBIN/initdb' -D '$dir/data' -U postgres --auth=scram-sha-256 --pwfile='$dir/pw' >'$dir/initdb.log' 2>&1"
  su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w \
    -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null"
  su postgres -s /bin/sh -c "PGPASSWORD=memprog '$PGBIN/createdb' -h 127.0.0.1 -p $port -U postgres memprog_test"
  echo "export MEMPROG_TEST_PG_URL='postgresql+psycopg://postgres:memprog@127.0.0.1:$port/memprog_test'"
  echo "export MEMPROG_TEST_PG_DIR='$dir'"
  ;;
stop)
  dir="${2:?usage: postgres.sh stop DIR}"
  su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$dir/data' -m immediate -w stop >/dev/null" || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
