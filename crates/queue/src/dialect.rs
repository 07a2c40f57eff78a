//! Which database a value belongs to, as one small enum that every crate owning SQL matches
//! on: a pool ([`Pool`]), a transaction's connection ([`Conn`]), or the queue's own drivers.
//!
//! A crate with tables of its own keeps its SQL in `store/{mod,sqlite,postgres}.rs`: the
//! `sqlite` and `postgres` modules hold one function per statement in their dialect, and
//! `store/mod.rs` routes each call with [`on_dialect!`](crate::on_dialect). Nothing outside
//! those modules writes SQL, and nobody asks "is this SQLite?" with an `Option`.

use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};

/// One value per database dialect: the SQLite one or the PostgreSQL one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect<S, P> {
    /// Embedded SQLite.
    Sqlite(S),
    /// PostgreSQL.
    Postgres(P),
}

/// The store's connection pool, in its dialect, for reads of a crate's own tables.
pub type Pool<'a> = Dialect<&'a SqlitePool, &'a PgPool>;

/// The connection inside a [`Tx`](crate::Tx), in its dialect, for the caller's own statements.
pub type Conn<'a> = Dialect<&'a mut SqliteConnection, &'a mut PgConnection>;

/// Calls `sqlite::f(handle, args…)` or `postgres::f(handle, args…)` (modules in the caller's
/// scope) with the handle inside a [`Pool`] or [`Conn`], and awaits it. The one way subsync
/// code picks its SQL dialect.
///
/// ```ignore
/// pub async fn get(store: &Store, id: &str) -> Result<Option<Row>, Error> {
///     subsync_queue::on_dialect!(store.pool(), get(id))
/// }
/// ```
#[macro_export]
macro_rules! on_dialect {
    ($handle:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $handle {
            $crate::Dialect::Sqlite(handle) => sqlite::$f(handle, $($arg),*).await,
            $crate::Dialect::Postgres(handle) => postgres::$f(handle, $($arg),*).await,
        }
    };
}
