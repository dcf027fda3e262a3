//! `omniforge migrate` on a SQLite data directory created on first run (the PostgreSQL side of
//! migrations is tested in host/store against a real server).

use crate::{omniforge_in, stderr, stdout_text};

#[test]
fn migrate_reports_applies_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh-data");
    let data = data.to_str().unwrap();

    let status = omniforge_in(dir.path(), &["migrate", "--status", "--data-dir", data]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = stdout_text(&status);
    assert!(
        text.contains("SQLite at") && text.contains("initial") && text.contains("pending"),
        "{text}"
    );

    let first = omniforge_in(dir.path(), &["migrate", "--data-dir", data]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let migrations = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite"),
    )
    .unwrap()
    .count();
    assert!(
        stdout_text(&first).contains(&format!("applied {migrations} migration")),
        "{}",
        stdout_text(&first)
    );

    let second = omniforge_in(dir.path(), &["migrate", "--data-dir", data]);
    let text = stdout_text(&second);
    assert!(
        text.contains("up to date") && text.contains("applied") && !text.contains("pending"),
        "{text}"
    );
    assert!(std::path::Path::new(data).join("omniforge.db").exists());
}

#[test]
fn a_bad_database_url_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = omniforge_in(
        dir.path(),
        &["migrate", "--database-url", "mysql://root:hunter2@db/x"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("unsupported database URL"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}
