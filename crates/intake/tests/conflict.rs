//! A webhook whose batch loses a deadlock is stored, not refused. The worker's group commit
//! holds queue-group rows until its commit; PostgreSQL breaks a lock cycle by rolling one
//! transaction back, and when that is the intake's batch it is simply run again: the sender
//! never sees a 503 for a database that is fine.
//!
//! PostgreSQL only: SQLite serializes every write transaction, so it cannot deadlock.

use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};
use subsync_eventlog::{Disposition, EventRecord, SYNC_QUEUE};
use subsync_intake::Batching;
use subsync_intake::committer::Committer;
use subsync_intake::metrics::IntakeMetrics;
use subsync_queue::testing::TestDb;
use subsync_queue::{Backend, Dialect};

fn record(event_id: &str, subscription: &str) -> EventRecord {
    EventRecord {
        event_id: event_id.into(),
        event_type: "customer.subscription.updated".into(),
        created: Some(1_764_633_600),
        livemode: false,
        api_version: Some("2025-03-31.basil".into()),
        object_kind: "event",
        group_key: subscription.into(),
        disposition: Disposition::Handled,
        payload: format!(r#"{{"id":"{event_id}","object":"event"}}"#),
    }
}

async fn deadlocks(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await
        .expect("deadlock count")
}

/// Waits (bounded) until the intake's statement (the event log's `WITH input AS …`; the
/// activity view shows only its first kilobyte) waits for a lock.
async fn until_someone_waits_for_a_lock(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH input AS%'",
        )
        .fetch_one(pool)
        .await
        .and_then(|row| row.try_get("n"))
        .expect("pg_stat_activity");
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the intake never waited for the group row");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_loses_a_deadlock_is_stored_on_its_next_attempt() {
    let run = async {
        let db = TestDb::new(Backend::Postgres).await;
        let Dialect::Postgres(pool) = db.store.pool() else { unreachable!("a PostgreSQL test database") };
        let pool = pool.clone();
        let metrics = IntakeMetrics::register(&subsync_metrics::Registry::new()).expect("metrics");
        let committer = Committer::start(db.store.clone(), Batching::default(), metrics);
        // The subscription's queue-group row exists once its first event is stored.
        committer.submit(record("evt_first", "sub_raced")).await.expect("first event stored");

        // Another writer (as a worker batch would) holds the group row…
        let mut other = pool.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM subsync_groups WHERE queue = $1 AND group_key = 'sub_raced' FOR UPDATE")
            .bind(SYNC_QUEUE)
            .execute(&mut *other)
            .await
            .expect("lock the group row");
        let before = deadlocks(&pool).await;

        // …while the intake's batch inserts its job (unique key `evt_raced`), then waits for it…
        let submitting = tokio::spawn({
            let committer = committer.clone();
            async move { committer.submit(record("evt_raced", "sub_raced")).await }
        });
        until_someone_waits_for_a_lock(&pool).await;

        // …and the other writer now wants that job's key: a lock cycle. PostgreSQL rolls
        // back the side that waited longer, the intake's batch; the other goes on.
        sqlx::query(
            "INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, max_attempts, run_at) \
             VALUES (gen_random_uuid(), $1, 'evt_raced', 'sub_raced', '{}'::jsonb, 1, now())",
        )
        .bind(SYNC_QUEUE)
        .execute(&mut *other)
        .await
        .expect("the other writer's insert goes through once the intake's batch is rolled back");
        other.rollback().await.expect("rollback");

        let stored = submitting.await.expect("join").expect("the webhook is stored, not refused");
        assert!(!stored.duplicate, "{stored:?}");
        // A backend reports its statistics within seconds, not at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        while deadlocks(&pool).await == before {
            assert!(Instant::now() < deadline, "PostgreSQL saw no deadlock: the test did not test the retry");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(db.count("subsync_events", "WHERE event_id = 'evt_raced'").await, 1);
        assert_eq!(db.count("subsync_jobs", "WHERE unique_key = 'evt_raced'").await, 1);
        db.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.expect("test timed out");
}
