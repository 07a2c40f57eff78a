//! Fast pickup: wake idle workers when work appears instead of waiting for their next poll.
//!
//! In one process a `watch` channel carries a counter: a worker never misses a wake-up that
//! happened while it was busy. On PostgreSQL the same poke is also sent to other processes
//! with `NOTIFY`, coalesced: at most one notification per [`NOTIFY_SPACING`], sent after the
//! enqueuing transaction committed and outside it, so a burst of enqueues costs a handful of
//! notifications instead of one per job (a `pg_notify` per row costs three quarters of the
//! insert rate). Polling stays as the fallback for anything missed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};

/// The PostgreSQL channel subsync notifies on.
pub(crate) const CHANNEL: &str = "subsync_wake";
/// Minimum spacing of outgoing notifications from one process.
const NOTIFY_SPACING: Duration = Duration::from_millis(5);
/// Delay before re-connecting a dropped listener.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Wake {
    local: watch::Sender<u64>,
    pg: Option<PgWake>,
}

#[derive(Debug)]
struct PgWake {
    pool: PgPool,
    outgoing: Arc<Notify>,
    notifier_started: OnceLock<()>,
    listener_started: OnceLock<()>,
}

/// A worker's view of wake-ups.
#[derive(Debug, Clone)]
pub struct WakeSubscription {
    rx: watch::Receiver<u64>,
}

impl WakeSubscription {
    /// Waits for a wake-up newer than the last one seen, or for `timeout` (the poll interval).
    pub async fn wait(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.rx.changed()).await;
    }
}

impl Wake {
    pub(crate) fn local() -> Self {
        Self { local: watch::Sender::new(0), pg: None }
    }

    pub(crate) fn postgres(pool: PgPool) -> Self {
        Self {
            local: watch::Sender::new(0),
            pg: Some(PgWake {
                pool,
                outgoing: Arc::new(Notify::new()),
                notifier_started: OnceLock::new(),
                listener_started: OnceLock::new(),
            }),
        }
    }

    /// Work may be available: wake local workers now, remote ones soon.
    pub(crate) fn poke(&self) {
        self.poke_local();
        if let Some(pg) = &self.pg {
            pg.notifier_started.get_or_init(|| {
                spawn_notifier(pg.pool.clone(), pg.outgoing.clone());
            });
            // `notify_one` stores one permit: pokes during a send coalesce into one more send.
            pg.outgoing.notify_one();
        }
    }

    /// Work may be available to this process only: a worker here just freed a slot and a
    /// group, so it claims next itself and no notification needs to cross the network.
    pub(crate) fn poke_local(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> WakeSubscription {
        if let Some(pg) = &self.pg {
            pg.listener_started.get_or_init(|| {
                spawn_listener(pg.pool.clone(), self.local.clone());
            });
        }
        WakeSubscription { rx: self.local.subscribe() }
    }
}

fn spawn_notifier(pool: PgPool, outgoing: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            outgoing.notified().await;
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool).await {
                if pool.is_closed() {
                    return; // the store was closed: nothing left to wake
                }
                // Not fatal: other workers fall back to polling.
                tracing::debug!(error = %e, "could not send wake-up notification");
            }
            tokio::time::sleep(NOTIFY_SPACING).await;
        }
    });
}

fn spawn_listener(pool: PgPool, local: watch::Sender<u64>) {
    tokio::spawn(async move {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed; polling until it works again");
                    } else {
                        // Anything sent while we were not listening is picked up now.
                        local.send_modify(|n| *n = n.wrapping_add(1));
                        loop {
                            match listener.recv().await {
                                Ok(_) => local.send_modify(|n| *n = n.wrapping_add(1)),
                                Err(_) if pool.is_closed() => return,
                                Err(e) => {
                                    tracing::warn!(error = %e, "lost the LISTEN connection; polling until it is back");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot open a LISTEN connection"),
            }
            // Nobody listens any more, or the store's pool was closed: stop.
            if local.is_closed() || pool.is_closed() {
                return;
            }
            tokio::time::sleep(LISTEN_RETRY).await;
        }
    });
}
