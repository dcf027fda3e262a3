#!/usr/bin/env bash
# Backs up and restores an OmniForge installation: its database (SQLite or PostgreSQL) and,
# with the filesystem blob store, its blobs. docs/operations/runbooks/backup-restore.md says
# when and how; the test host/cli/tests/cli/backup.rs runs both directions.
#
#   scripts/backup.sh create  BACKUP_DIR    # while the server runs
#   scripts/backup.sh restore BACKUP_DIR    # with every server stopped
#
# It reads the server's own variables: OMNIFORGE_DATABASE_URL (default: the SQLite file in
# OMNIFORGE_DATA_DIR, default ./omniforge-data) and OMNIFORGE_BLOBS_BACKEND. Not in a backup:
# the secrets key (OMNIFORGE_SECRETS_KEY: keep it apart, a backup without it cannot open the
# tenants' secrets), object-storage blobs (use the bucket's versioning or replication), and
# the compiled-artifact cache (rebuilt on demand).
#
# SQLite is copied with its online backup API (a consistent copy while the server writes);
# PostgreSQL with pg_dump's custom format, restored with pg_restore --clean into the same
# database. Blobs are immutable files named by digest, so copying them while the server runs
# is safe: a blob written after the database copy is only an unreferenced extra.
set -euo pipefail

usage() { echo "usage: $0 create|restore BACKUP_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
backup=$2

data_dir=${OMNIFORGE_DATA_DIR:-./omniforge-data}
database_url=${OMNIFORGE_DATABASE_URL:-sqlite://$data_dir/omniforge.db}
blobs_backend=${OMNIFORGE_BLOBS_BACKEND:-fs}

case "$database_url" in
    postgres://* | postgresql://*) engine=postgres ;;
    sqlite://*) engine=sqlite; sqlite_file=${database_url#sqlite://} ;;
    sqlite:*) engine=sqlite; sqlite_file=${database_url#sqlite:} ;;
    *) echo "error: unsupported database URL (sqlite://PATH or postgres://…)" >&2; exit 2 ;;
esac

sqlite_copy() { # source destination: SQLite's online backup, then an integrity check
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
source = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
target = sqlite3.connect(sys.argv[2])
source.backup(target)
ok = target.execute("PRAGMA integrity_check").fetchone()[0]
if ok != "ok":
    sys.exit(f"the copy of {sys.argv[1]} fails its integrity check: {ok}")
target.close()
source.close()
PY
}

case "$action" in
create)
    [ ! -e "$backup" ] || { echo "error: $backup exists; name a new directory" >&2; exit 1; }
    mkdir -p "$backup"
    if [ "$engine" = sqlite ]; then
        [ -f "$sqlite_file" ] || { echo "error: no database at $sqlite_file" >&2; exit 1; }
        sqlite_copy "$sqlite_file" "$backup/omniforge.db"
    else
        pg_dump --format=custom --no-owner --no-privileges --file="$backup/omniforge.pgdump" \
            "$database_url"
    fi
    if [ "$blobs_backend" = fs ] && [ -d "$data_dir/blobs/sha256" ]; then
        tar -C "$data_dir/blobs" -cf "$backup/blobs.tar" sha256
    fi
    cat > "$backup/backup.json" <<JSON
{"created_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "database": "$engine", "blobs": "$blobs_backend", "fs_blobs": $([ -f "$backup/blobs.tar" ] && echo true || echo false)}
JSON
    echo "backed up the $engine database$([ -f "$backup/blobs.tar" ] && echo " and the blobs") to $backup"
    ;;
restore)
    [ -f "$backup/backup.json" ] || { echo "error: $backup is not a backup (no backup.json)" >&2; exit 1; }
    grep -q "\"database\": \"$engine\"" "$backup/backup.json" \
        || { echo "error: $backup holds another database engine than $database_url" >&2; exit 1; }
    if [ "$engine" = sqlite ]; then
        mkdir -p "$(dirname "$sqlite_file")"
        # The old file's journal must not be replayed over the restored copy.
        rm -f "$sqlite_file" "$sqlite_file-wal" "$sqlite_file-shm"
        sqlite_copy "$backup/omniforge.db" "$sqlite_file"
    else
        pg_restore --clean --if-exists --no-owner --no-privileges --exit-on-error \
            --single-transaction --dbname="$database_url" "$backup/omniforge.pgdump"
    fi
    if [ -f "$backup/blobs.tar" ]; then
        mkdir -p "$data_dir/blobs"
        tar -C "$data_dir/blobs" -xf "$backup/blobs.tar"
    fi
    echo "restored the $engine database$([ -f "$backup/blobs.tar" ] && echo " and the blobs") from $backup"
    ;;
*) usage ;;
esac
