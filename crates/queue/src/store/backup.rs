//! A consistent hot copy of the embedded SQLite database, taken while the system runs.
//!
//! `VACUUM INTO` reads the whole database inside one read transaction, so the copy is the
//! database as of one instant (every transaction committed before it began, nothing after),
//! while WAL mode lets writers go on meanwhile. The copy is then opened read-only and
//! checked before the backup is reported done.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqlitePool};

use crate::error::QueueError;

/// What a finished backup holds, read back from the copy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// Jobs in the copy (every state).
    pub jobs: i64,
    /// Migrations recorded in the copy.
    pub migrations: i64,
}

/// Writes a consistent copy of the database behind `pool` to `dest` (which must not exist),
/// then opens the copy read-only and checks it (`PRAGMA integrity_check`).
pub(crate) async fn sqlite_backup(pool: &SqlitePool, dest: &Path) -> Result<BackupSummary, QueueError> {
    if dest.exists() {
        return Err(QueueError::InvalidInput(format!(
            "{} exists: a backup never overwrites a file, choose a new name",
            dest.display()
        )));
    }
    let target =
        dest.to_str().ok_or_else(|| QueueError::InvalidInput(format!("{} is not a UTF-8 path", dest.display())))?;
    sqlx::query("VACUUM INTO ?1").bind(target).execute(pool).await?;

    let mut copy = SqliteConnectOptions::new().filename(dest).read_only(true).connect().await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut copy).await?;
    if check != "ok" {
        let _ = copy.close().await;
        return Err(QueueError::Corrupt(format!("the copy at {} fails its integrity check: {check}", dest.display())));
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM subsync_jobs").fetch_one(&mut copy).await?;
    let migrations: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", crate::schema::MIGRATIONS_TABLE)))
            .fetch_one(&mut copy)
            .await?;
    copy.close().await?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary { bytes, jobs, migrations })
}
