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
}
