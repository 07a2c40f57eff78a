//! The caller's write transaction ([`Tx`]): a producer's or handler's own rows, the jobs it
//! enqueues and the job it completes land together or not at all.

use tokio::sync::OwnedMutexGuard;

use super::Store;
use crate::dialect::{Conn, Dialect};
use crate::error::QueueError;

/// Whom a committed transaction wakes: nobody, this process's workers, or every process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum WakeScope {
    None,
    Local,
    Everywhere,
}

/// The open transaction, in its dialect.
pub(super) type TxInner = Dialect<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Transaction<'static, sqlx::Postgres>>;

/// A write transaction that the caller owns. The caller writes its own rows through
/// [`Tx::conn`], enqueues or completes jobs through the [`Store`], then commits: everything
/// lands together or not at all. Dropping it without commit rolls back.
pub struct Tx {
    pub(super) inner: TxInner,
    pub(super) store: Store,
    pub(super) wake: WakeScope,
    pub(super) on_commit: Vec<Box<dyn FnOnce() + Send>>,
    pub(super) _writer: Option<OwnedMutexGuard<()>>,
    pub(super) savepoints: u32,
}

/// A point inside a [`Tx`] that the caller can roll back to without abandoning the rest of
/// the transaction ([`Tx::savepoint`]): how several jobs share one commit, each keeping its
/// effect and its completion together.
#[derive(Debug)]
#[must_use = "release it or roll back to it"]
pub struct Savepoint {
    name: String,
    hooks: usize,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("backend", &self.store.backend()).finish()
    }
}

impl Tx {
    /// The transaction's connection, for the caller's own statements.
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            Dialect::Sqlite(t) => Dialect::Sqlite(t),
            Dialect::Postgres(t) => Dialect::Postgres(t),
        }
    }

    /// Runs `hook` only if (and after) the transaction commits.
    pub fn on_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(hook));
    }

    /// Commits, then wakes workers if jobs became runnable.
    pub async fn commit(self) -> Result<(), QueueError> {
        let Tx { inner, store, wake, on_commit, _writer, savepoints: _ } = self;
        match inner {
            Dialect::Sqlite(t) => t.commit().await?,
            Dialect::Postgres(t) => t.commit().await?,
        }
        drop(_writer);
        match wake {
            WakeScope::None => {}
            WakeScope::Local => store.inner.wake.poke_local(),
            WakeScope::Everywhere => store.inner.wake.poke(),
        }
        for hook in on_commit {
            hook();
        }
        Ok(())
    }

    /// Marks a point to roll back to: what follows (statements, jobs enqueued or completed,
    /// commit hooks) can be undone by [`Tx::rollback_to`] while what came before stays.
    pub async fn savepoint(&mut self) -> Result<Savepoint, QueueError> {
        self.savepoints += 1;
        let name = format!("subsync_sp_{}", self.savepoints);
        self.execute(&format!("SAVEPOINT {name}")).await?;
        Ok(Savepoint { name, hooks: self.on_commit.len() })
    }

    /// Keeps what was done since `point` (it commits with the transaction).
    pub async fn release(&mut self, point: Savepoint) -> Result<(), QueueError> {
        self.execute(&format!("RELEASE SAVEPOINT {}", point.name)).await
    }

    /// Undoes what was done since `point`, commit hooks included; the transaction goes on.
    pub async fn rollback_to(&mut self, point: Savepoint) -> Result<(), QueueError> {
        self.execute(&format!("ROLLBACK TO SAVEPOINT {}", point.name)).await?;
        self.on_commit.truncate(point.hooks);
        Ok(())
    }

    async fn execute(&mut self, sql: &str) -> Result<(), QueueError> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &mut self.inner {
            Dialect::Sqlite(t) => {
                sqlx::query(sql).execute(&mut **t).await?;
            }
            Dialect::Postgres(t) => {
                sqlx::query(sql).execute(&mut **t).await?;
            }
        }
        Ok(())
    }

    /// Rolls back explicitly (dropping does the same).
    pub async fn rollback(self) -> Result<(), QueueError> {
        match self.inner {
            Dialect::Sqlite(t) => t.rollback().await?,
            Dialect::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}
