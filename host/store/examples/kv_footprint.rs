//! How much storage a kv entry takes beyond its key and value, on each engine: the number
//! the kv quota charges per entry (`KV_ENTRY_OVERHEAD`) is chosen from this.
//!
//! ```sh
//! cargo run -p omniforge-store --example kv_footprint -- [postgres://…/test]
//! ```
//!
//! Writes N entries of small keys and values into one tenant's store through the same code
//! the server uses, and reports what the engine's files or relations grew by, per entry,
//! less the key and value bytes. Results go to docs/performance.md.

use omniforge_store::{AuditContext, Database, KvQuota};

const ENTRIES: usize = 20_000;

async fn footprint(db: &Database, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    db.migrate().await?;
    let tenant = db
        .platform()
        .create_tenant(&AuditContext::system("bench", "kv"), "bench", "Bench")
        .await?;
    let store = db.tenant(&tenant.id);
    let quota = KvQuota {
        scope_bytes: u64::MAX,
        tenant_bytes: u64::MAX,
    };
    let size = || async {
        Ok::<i64, Box<dyn std::error::Error>>(match db {
            Database::Sqlite(pool) => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(pool)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(pool)
                    .await?;
                pages * size
            }
            Database::Postgres(pool) => {
                sqlx::query("VACUUM ANALYZE kv_entries")
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("SELECT pg_total_relation_size('kv_entries')")
                    .fetch_one(pool)
                    .await?
            }
        })
    };
    if let Database::Sqlite(pool) = db {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
    }
    let before = size().await?;
    let mut payload = 0usize;
    for n in 0..ENTRIES {
        let key = format!("key-{n:08}");
        let value = n.to_le_bytes();
        payload += key.len() + value.len();
        store
            .kv_set(
                &"bench/skill-with-a-typical-name".parse().unwrap(),
                &key,
                &value,
                quota,
            )
            .await?;
    }
    if let Database::Sqlite(pool) = db {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
    }
    let after = size().await?;
    let per_entry = (after - before) as f64 / ENTRIES as f64;
    let overhead = per_entry - payload as f64 / ENTRIES as f64;
    println!(
        "{what}: {ENTRIES} entries of {:.0} payload bytes took {} bytes: {per_entry:.0} per \
         entry, {overhead:.0} beyond key and value",
        payload as f64 / ENTRIES as f64,
        after - before
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let sqlite = Database::connect(&format!("sqlite://{}/kv.db", dir.path().display())).await?;
    footprint(&sqlite, "SQLite").await?;
    if let Some(url) = std::env::args().nth(1) {
        let admin = Database::connect(&url).await?;
        if let Database::Postgres(pool) = &admin {
            sqlx::query("DROP DATABASE IF EXISTS omniforge_kv_footprint")
                .execute(pool)
                .await?;
            sqlx::query("CREATE DATABASE omniforge_kv_footprint")
                .execute(pool)
                .await?;
        }
        let (base, _) = url.rsplit_once('/').ok_or("a database URL")?;
        let db = Database::connect(&format!("{base}/omniforge_kv_footprint")).await?;
        footprint(&db, "PostgreSQL").await?;
        db.close().await;
        if let Database::Postgres(pool) = &admin {
            sqlx::query("DROP DATABASE omniforge_kv_footprint")
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}
