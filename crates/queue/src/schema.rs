//! The database schema, embedded from `migrations/<backend>/` at build time.
//!
//! One migration history for all of subsync (queue, intake and worker tables) per backend,
//! recorded in our own table `subsync_migrations` so we never collide with another tool's.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "subsync_migrations";

/// Which dialect of SQL a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, single machine, zero set-up.
    Sqlite,
    /// Shared by many intakes and workers on many machines.
    Postgres,
}

impl Backend {
    /// Name for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The migrator for `backend`, with every embedded migration.
pub fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => embedded::SQLITE,
        Backend::Postgres => embedded::POSTGRES,
    };
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// How a database's schema compares with the migrations this binary embeds. Commands that
/// must not change a production schema (the operator commands; `subsync migrate` does that)
/// check it first, so an unmigrated database gets "run `subsync migrate`" rather than a
/// missing-table error halfway through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every embedded migration is applied. Newer ones may be too (a newer binary migrated
    /// the database first, as in a rolling upgrade): forward-only migrations keep the old
    /// tables working.
    Current,
    /// No subsync migration was ever applied: an empty or foreign database.
    Missing,
    /// Migrated by an older binary: these embedded versions are not applied yet.
    Behind {
        /// The versions still to apply, oldest first.
        pending: Vec<i64>,
    },
}

impl SchemaStatus {
    /// True when this binary can use the database as it is.
    pub fn is_current(&self) -> bool {
        *self == SchemaStatus::Current
    }
}

/// The status of a database whose recorded migrations are `applied` (`None`: it has no
/// migrations table at all). Read by [`crate::Store::schema_status`].
pub(crate) fn status(backend: Backend, applied: Option<&[i64]>) -> SchemaStatus {
    match applied {
        None => SchemaStatus::Missing,
        Some(applied) => compare(&migrator(backend), applied),
    }
}

/// [`status`] given the versions recorded as applied.
fn compare(migrator: &Migrator, applied: &[i64]) -> SchemaStatus {
    if applied.is_empty() {
        return SchemaStatus::Missing;
    }
    let pending: Vec<i64> = migrator.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    if pending.is_empty() { SchemaStatus::Current } else { SchemaStatus::Behind { pending } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let versions = |b| migrator(b).iter().map(|m| m.version).collect::<Vec<_>>();
        let sqlite = versions(Backend::Sqlite);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, versions(Backend::Postgres));
    }

    #[test]
    fn status_compares_applied_versions_with_the_embedded_ones() {
        let m = migrator(Backend::Sqlite);
        let all: Vec<i64> = m.iter().map(|m| m.version).collect();
        assert_eq!(compare(&m, &[]), SchemaStatus::Missing);
        assert_eq!(compare(&m, &all), SchemaStatus::Current);
        let mut newer = all.clone();
        newer.push(i64::MAX);
        assert!(compare(&m, &newer).is_current(), "a newer binary's extra migrations are fine");
        let last = *all.last().expect("at least one migration");
        assert_eq!(compare(&m, &all[..all.len() - 1]), SchemaStatus::Behind { pending: vec![last] });
    }
}
