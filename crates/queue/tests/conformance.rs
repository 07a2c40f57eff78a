//! The queue's promises, checked the same way on SQLite and on PostgreSQL.
//!
//! Every test below runs twice, once per backend (`sqlite::name`, `postgres::name`).
//! PostgreSQL comes from `SUBSYNC_TEST_POSTGRES_URL`; without it the postgres tests fail.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use subsync_queue::both_backends;
use subsync_queue::{
    Backend, Conn, Dialect, EnqueueOutcome, FailOutcome, JobError, JobFilter, JobState, NewJob, Page, QueueConfig,
    QueueError, Selection, Store,
};
use support::{TestDb, fast_config, spawn_worker, wait_for_count, worker_options};

const Q: &str = "conformance";

both_backends!(90;
    enqueue_returns_created_then_duplicate,
    concurrent_duplicate_enqueues_create_one_job,
    rolled_back_enqueue_leaves_nothing,
    enqueue_rejects_bad_input,
    batch_enqueue_matches_one_by_one,
    overlapping_concurrent_batches_create_each_job_once,
    jobs_enqueued_inside_a_callers_own_statement,
    claim_takes_oldest_due_job_per_group_only,
    idle_groups_never_hide_due_work,
    ungrouped_jobs_run_in_parallel,
    database_refuses_two_running_jobs_in_a_group,
    complete_in_commits_with_the_handler_writes,
    late_worker_cannot_overwrite_a_rescued_job,
    heartbeat_keeps_a_long_job_alive,
    failures_back_off_then_go_dead,
    permanent_error_goes_straight_to_dead,
    job_in_backoff_does_not_block_its_group,
    retry_and_cancel,
    bulk_retry_by_filter,
    prune_keeps_keys_inside_the_window,
    operator_views,
    released_job_is_not_counted_as_an_attempt,
    a_claim_landing_after_shutdown_gives_its_jobs_back,
    workers_across_processes_never_overlap_and_keep_fifo,
    flaky_handlers_still_never_overlap,
    killed_worker_loses_its_jobs_to_another,
);

async fn db(backend: Backend, config: QueueConfig) -> TestDb {
    TestDb::with_config(backend, config).await
}

fn job(key: &str, group: &str) -> NewJob {
    NewJob::new(Q, json!({ "key": key, "group": group })).with_unique_key(key).with_group(group)
}

async fn enqueue_returns_created_then_duplicate(b: Backend) {
    let t = db(b, fast_config()).await;
    let first = t.store.enqueue_one(job("evt_1", "sub_1")).await.unwrap();
    let EnqueueOutcome::Created { job_id } = first else { panic!("expected created, got {first:?}") };
    assert_eq!(job_id.get_version_num(), 7, "job ids are UUID v7");
    let second = t.store.enqueue_one(job("evt_1", "sub_1")).await.unwrap();
    assert_eq!(second, EnqueueOutcome::Duplicate { job_id, state: JobState::Pending });
    // The same key in another queue is another job.
    let other = t.store.enqueue_one(NewJob::new("other", json!({})).with_unique_key("evt_1")).await.unwrap();
    assert!(!other.is_duplicate());
    t.close().await;
}

async fn concurrent_duplicate_enqueues_create_one_job(b: Backend) {
    let t = db(b, fast_config()).await;
    let other = t.another_process(fast_config()).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { t.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move { store.enqueue_one(job("evt_race", "sub_race")).await }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let outcome = task.await.unwrap().expect("a duplicate enqueue is never an error");
        if !outcome.is_duplicate() {
            created += 1;
        }
        ids.insert(outcome.job_id());
    }
    assert_eq!(created, 1, "exactly one enqueue creates the job");
    assert_eq!(ids.len(), 1, "every caller gets the same job id");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 1);
    t.close().await;
}

async fn rolled_back_enqueue_leaves_nothing(b: Backend) {
    let t = db(b, fast_config()).await;
    let mut tx = t.store.begin().await.unwrap();
    t.store.enqueue(&mut tx, job("evt_rb", "sub_rb")).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 0);
    assert!(t.store.claim(Q, "w", 10).await.unwrap().is_empty());
    // Dropping a transaction rolls back too.
    {
        let mut tx = t.store.begin().await.unwrap();
        t.store.enqueue(&mut tx, job("evt_rb", "sub_rb")).await.unwrap();
    }
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 0);
    // The key is free for a real enqueue.
    assert!(!t.store.enqueue_one(job("evt_rb", "sub_rb")).await.unwrap().is_duplicate());
    t.close().await;
}

async fn enqueue_rejects_bad_input(b: Backend) {
    let t = db(b, fast_config()).await;
    for bad in [
        NewJob::new("", json!({})),
        NewJob::new(Q, json!({})).with_unique_key(""),
        NewJob::new(Q, json!({})).with_max_attempts(0),
    ] {
        let err = t.store.enqueue_one(bad).await.unwrap_err();
        assert!(matches!(err, QueueError::InvalidInput(_)), "{err}");
    }
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 0);
    t.close().await;
}

async fn batch_enqueue_matches_one_by_one(b: Backend) {
    let t = db(b, fast_config()).await;
    let existing = t.store.enqueue_one(job("evt_old", "sub_a")).await.unwrap().job_id();
    let mut tx = t.store.begin().await.unwrap();
    let outcomes = t
        .store
        .enqueue_many(
            &mut tx,
            vec![
                job("evt_2", "sub_b"),
                job("evt_old", "sub_a"),
                job("evt_1", "sub_a"),
                job("evt_2", "sub_b"),
                NewJob::new(Q, json!({ "no": "key" })),
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outcomes.len(), 5, "one outcome per job, in input order");
    let EnqueueOutcome::Created { job_id: evt_2 } = outcomes[0] else { panic!("{:?}", outcomes[0]) };
    assert_eq!(outcomes[1], EnqueueOutcome::Duplicate { job_id: existing, state: JobState::Pending });
    assert!(!outcomes[2].is_duplicate());
    assert_eq!(
        outcomes[3],
        EnqueueOutcome::Duplicate { job_id: evt_2, state: JobState::Pending },
        "a key repeated inside the batch is one job"
    );
    assert!(!outcomes[4].is_duplicate(), "a job without a key is always new");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 4);
    // FIFO inside a group holds across the batch: evt_old before evt_1.
    let claimed = t.store.claim(Q, "w", 10).await.unwrap();
    let sub_a: Vec<_> = claimed.iter().filter(|c| c.lease.group_key == "sub_a").collect();
    assert_eq!(sub_a.len(), 1);
    assert_eq!(sub_a[0].lease.job_id, existing);
    // One bad job refuses the whole batch, and an empty batch is a no-op.
    let mut tx = t.store.begin().await.unwrap();
    let err = t
        .store
        .enqueue_many(&mut tx, vec![job("evt_3", "sub_c"), NewJob::new(Q, json!({})).with_unique_key("")])
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::InvalidInput(_)), "{err}");
    assert!(t.store.enqueue_many(&mut tx, Vec::new()).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert!(t.store.find_by_key(Q, "evt_3").await.unwrap().is_none());
    // A rolled-back batch leaves nothing.
    let mut tx = t.store.begin().await.unwrap();
    t.store.enqueue_many(&mut tx, vec![job("evt_4", "sub_d"), job("evt_5", "sub_e")]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 4);
    t.close().await;
}

/// Batches sharing keys and groups in opposite orders, from two processes at once: every key
/// becomes one job, every caller learns its id, and no batch fails (no deadlock).
async fn overlapping_concurrent_batches_create_each_job_once(b: Backend) {
    let t = db(b, fast_config()).await;
    let other = t.another_process(fast_config()).await;
    let mut tasks = Vec::new();
    for i in 0..12usize {
        let store = if i % 2 == 0 { t.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let mut keys: Vec<usize> = (0..20).map(|k| (k + i * 3) % 30).collect();
            if i % 2 == 1 {
                keys.reverse();
            }
            let jobs = keys.iter().map(|k| job(&format!("evt_{k}"), &format!("sub_{}", k % 7))).collect();
            let mut tx = store.begin().await?;
            let outcomes = store.enqueue_many(&mut tx, jobs).await?;
            tx.commit().await?;
            Ok::<_, QueueError>(keys.into_iter().zip(outcomes).collect::<Vec<_>>())
        }));
    }
    let mut ids: HashMap<usize, HashSet<subsync_queue::JobId>> = HashMap::new();
    let mut created = 0;
    for task in tasks {
        for (key, outcome) in task.await.unwrap().expect("a batch never fails on overlap") {
            created += usize::from(!outcome.is_duplicate());
            ids.entry(key).or_default().insert(outcome.job_id());
        }
    }
    assert_eq!(ids.len(), 30);
    assert!(ids.values().all(|set| set.len() == 1), "every caller of a key got the same job");
    assert_eq!(created, 30, "each key created exactly once");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 30);
    t.close().await;
}

/// `PgJobBatch`: a caller writes its own rows and their jobs in one autocommitted statement
/// (PostgreSQL only; SQLite stores refuse it). Taken keys are skipped, and the jobs created
/// are claimable like any others.
async fn jobs_enqueued_inside_a_callers_own_statement(b: Backend) {
    let t = db(b, fast_config()).await;
    if matches!(b, Backend::Sqlite) {
        let refused = t.store.pg_job_batch(vec![job("k", "g")]);
        assert!(matches!(refused, Err(QueueError::InvalidInput(_))), "{refused:?}");
        t.close().await;
        return;
    }
    t.store.enqueue_one(job("own_taken", "g1")).await.unwrap();
    let Dialect::Postgres(pool) = t.store.pool() else { unreachable!("a PostgreSQL store") };
    let pool = pool.clone();
    sqlx::query("CREATE TABLE app_rows (key TEXT PRIMARY KEY, job_id UUID)").execute(&pool).await.unwrap();
    let run = |keys: Vec<&'static str>| {
        let (store, pool) = (t.store.clone(), pool.clone());
        async move {
            let jobs = keys.iter().map(|k| job(k, &format!("g_{k}"))).collect();
            let batch = store.pg_job_batch(jobs).unwrap();
            let sql = format!(
                "WITH input AS (SELECT * FROM unnest($1::text[]) AS t(key)), {}, app AS ( \
                   INSERT INTO app_rows (key, job_id) SELECT i.key, e.id FROM input i \
                   LEFT JOIN enqueued e ON e.unique_key = i.key ON CONFLICT (key) DO NOTHING RETURNING key \
                 ) SELECT (SELECT count(*) FROM enqueued) AS jobs, (SELECT count(*) FROM app) AS app",
                subsync_queue::PgJobBatch::ctes(2)
            );
            let row = batch.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(keys)).fetch_one(&pool).await.unwrap();
            let counts: (i64, i64) = (sqlx::Row::get(&row, "jobs"), sqlx::Row::get(&row, "app"));
            store.jobs_enqueued();
            counts
        }
    };
    assert_eq!(run(vec!["own_a", "own_b", "own_taken"]).await, (2, 3), "a taken key makes no job");
    assert_eq!(run(vec!["own_a", "own_c"]).await, (1, 1), "the second time only the new key");
    let claimed = t.store.claim(Q, "w", 10).await.unwrap();
    let mut keys: Vec<String> = claimed.iter().filter_map(|c| c.unique_key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["own_a", "own_b", "own_c", "own_taken"]);
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app_rows a JOIN subsync_jobs j ON j.id = a.job_id AND j.unique_key = a.key",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(linked, 3, "each created job is linked from the caller's row");
    t.close().await;
}

async fn claim_takes_oldest_due_job_per_group_only(b: Backend) {
    let t = db(b, fast_config()).await;
    for i in 0..3 {
        t.store.enqueue_one(job(&format!("a{i}"), "sub_a")).await.unwrap();
        t.store.enqueue_one(job(&format!("b{i}"), "sub_b")).await.unwrap();
    }
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    t.store.enqueue_one(job("later", "sub_c").with_run_at(future)).await.unwrap();

    let first = t.store.claim(Q, "w1", 10).await.unwrap();
    let mut keys: Vec<_> = first.iter().map(|j| j.unique_key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, vec!["a0", "b0"], "one job per group, the oldest; nothing not yet due");
    assert!(first.iter().all(|j| j.attempt == 1));
    // Both groups are busy now: nothing more to claim, from any worker.
    assert!(t.store.claim(Q, "w2", 10).await.unwrap().is_empty());
    for j in &first {
        assert!(t.store.complete(&j.lease).await.unwrap());
    }
    let second = t.store.claim(Q, "w2", 10).await.unwrap();
    let mut keys: Vec<_> = second.iter().map(|j| j.unique_key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, vec!["a1", "b1"]);
    t.close().await;
}

async fn idle_groups_never_hide_due_work(b: Backend) {
    let t = db(b, fast_config()).await;
    // Ten groups each finish their only job: their rows linger as "maybe due" until probed.
    for i in 0..10 {
        t.store.enqueue_one(job(&format!("idle{i}"), &format!("sub_idle{i}"))).await.unwrap();
    }
    for j in t.store.claim(Q, "w", 10).await.unwrap() {
        assert!(t.store.complete(&j.lease).await.unwrap());
    }
    t.store.enqueue_one(job("real", "sub_real")).await.unwrap();
    let claimed = t.store.claim(Q, "w", 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "a one-slot claim still finds the due job behind idle groups");
    assert_eq!(claimed[0].unique_key.as_deref(), Some("real"));
    t.close().await;
}

async fn ungrouped_jobs_run_in_parallel(b: Backend) {
    let t = db(b, fast_config()).await;
    for i in 0..5 {
        t.store.enqueue_one(NewJob::new(Q, json!({ "i": i })).with_unique_key(format!("u{i}"))).await.unwrap();
    }
    let claimed = t.store.claim(Q, "w", 10).await.unwrap();
    assert_eq!(claimed.len(), 5, "jobs without a group are not serialized with each other");
    t.close().await;
}

async fn database_refuses_two_running_jobs_in_a_group(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("x1", "sub_x")).await.unwrap();
    t.store.enqueue_one(job("x2", "sub_x")).await.unwrap();
    let claimed = t.store.claim(Q, "w", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Bypass the queue and try to start the second job by hand: the schema must refuse.
    let refused = match t.store.pool() {
        Dialect::Sqlite(pool) => sqlx::query(
            "UPDATE subsync_jobs SET state = 'running', lease_token = 'x', lease_expires_at = 0 WHERE unique_key = 'x2'",
        )
        .execute(pool)
        .await
        .is_err(),
        Dialect::Postgres(pool) => sqlx::query(
            "UPDATE subsync_jobs SET state = 'running', lease_token = gen_random_uuid(), lease_expires_at = now() WHERE unique_key = 'x2'",
        )
        .execute(pool)
        .await
        .is_err(),
    };
    assert!(refused, "a second running job in one group must violate the unique index");
    t.close().await;
}

async fn complete_in_commits_with_the_handler_writes(b: Backend) {
    let t = db(b, fast_config()).await;
    // An application table beside the queue.
    let ddl = "CREATE TABLE app_effects (job_id TEXT PRIMARY KEY)";
    match t.store.pool() {
        Dialect::Sqlite(p) => drop(sqlx::query(ddl).execute(p).await.unwrap()),
        Dialect::Postgres(p) => drop(sqlx::query(ddl).execute(p).await.unwrap()),
    }
    t.store.enqueue_one(job("e1", "sub_e")).await.unwrap();
    let claimed = t.store.claim(Q, "w", 1).await.unwrap().remove(0);

    async fn write_effect(store: &Store, id: &str, lease: &subsync_queue::Lease) -> subsync_queue::Tx {
        let mut tx = store.begin().await.unwrap();
        match tx.conn() {
            Conn::Sqlite(c) => {
                sqlx::query("INSERT INTO app_effects VALUES (?1)").bind(id).execute(c).await.unwrap();
            }
            Conn::Postgres(c) => {
                sqlx::query("INSERT INTO app_effects VALUES ($1)").bind(id).execute(c).await.unwrap();
            }
        }
        store.complete_in(&mut tx, lease).await.unwrap();
        tx
    }
    let id = claimed.lease.job_id.to_string();
    // Rolled back: neither the effect nor the completion happened.
    write_effect(&t.store, &id, &claimed.lease).await.rollback().await.unwrap();
    assert_eq!(t.store.get(claimed.lease.job_id).await.unwrap().unwrap().state, JobState::Running);
    // Committed: both.
    write_effect(&t.store, &id, &claimed.lease).await.commit().await.unwrap();
    let record = t.store.get(claimed.lease.job_id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    assert!(record.finished_at.is_some());
    // Completing again (a second run of the job) is refused: the effect cannot repeat.
    let mut tx = t.store.begin().await.unwrap();
    let err = t.store.complete_in(&mut tx, &claimed.lease).await.unwrap_err();
    assert!(matches!(err, QueueError::LeaseLost(_)));
    tx.rollback().await.unwrap();
    t.close().await;
}

async fn late_worker_cannot_overwrite_a_rescued_job(b: Backend) {
    let mut cfg = fast_config();
    cfg.lease = Duration::from_millis(300);
    let t = db(b, cfg.clone()).await;
    t.store.enqueue_one(job("l1", "sub_l")).await.unwrap();
    let stalled = t.store.claim(Q, "stalled", 1).await.unwrap().remove(0);
    // The stalled worker never heartbeats; the lease runs out and another worker rescues it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.store.rescue_expired(10).await.unwrap(), 1);
    let record = t.store.get(stalled.lease.job_id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Pending);
    assert_eq!(record.attempts, 1, "the lost attempt counts");
    assert!(record.last_error.unwrap().contains("lease expired"));
    tokio::time::sleep(Duration::from_millis(300)).await; // past the backoff
    let taken = t.store.claim(Q, "rescuer", 1).await.unwrap().remove(0);
    assert_eq!(taken.lease.job_id, stalled.lease.job_id);
    assert_eq!(taken.attempt, 2);
    // The stalled worker comes back: every write of its is refused.
    assert!(!t.store.heartbeat(&stalled.lease).await.unwrap());
    assert!(!t.store.complete(&stalled.lease).await.unwrap());
    assert_eq!(t.store.fail(&stalled, "late", false).await.unwrap(), FailOutcome::LeaseLost);
    assert!(!t.store.release(&stalled.lease).await.unwrap());
    assert_eq!(t.store.get(taken.lease.job_id).await.unwrap().unwrap().state, JobState::Running);
    assert!(t.store.complete(&taken.lease).await.unwrap());
    t.close().await;
}

async fn heartbeat_keeps_a_long_job_alive(b: Backend) {
    let mut cfg = fast_config();
    cfg.lease = Duration::from_millis(300);
    let t = db(b, cfg).await;
    t.store.enqueue_one(job("long", "sub_long")).await.unwrap();
    let runs = Arc::new(Mutex::new(0u32));
    let worker = {
        let runs = runs.clone();
        spawn_worker(t.store.clone(), worker_options(Q, 2), move |_job| {
            let runs = runs.clone();
            async move {
                *runs.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(1200)).await; // four lease periods
                Ok::<(), JobError>(())
            }
        })
    };
    wait_for_count(&t.store, &[JobState::Succeeded], 1, Duration::from_secs(20)).await;
    worker.stop().await;
    assert_eq!(*runs.lock().unwrap(), 1, "a renewed lease is never rescued");
    let record = t.store.list(&JobFilter::default(), Page::default()).await.unwrap().remove(0);
    assert_eq!(record.attempts, 1);
    t.close().await;
}

async fn failures_back_off_then_go_dead(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("f1", "sub_f").with_max_attempts(3)).await.unwrap();
    let mut run_ats = Vec::new();
    for attempt in 1..=3u32 {
        let claimed = loop {
            if let Some(j) = t.store.claim(Q, "w", 1).await.unwrap().pop() {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(claimed.attempt, attempt);
        let outcome = t.store.fail(&claimed, &format!("boom {attempt}"), false).await.unwrap();
        if attempt < 3 {
            let FailOutcome::Retrying { run_at } = outcome else { panic!("{outcome:?}") };
            assert!(run_at > chrono::Utc::now() - chrono::Duration::milliseconds(5), "backoff is in the future");
            run_ats.push(run_at);
        } else {
            assert_eq!(outcome, FailOutcome::Dead);
        }
    }
    let record = t.store.list(&JobFilter::default(), Page::default()).await.unwrap().remove(0);
    assert_eq!(record.state, JobState::Dead);
    assert_eq!(record.attempts, 3);
    assert_eq!(record.last_error.as_deref(), Some("boom 3"));
    assert!(record.finished_at.is_some());
    assert!(t.store.claim(Q, "w", 1).await.unwrap().is_empty(), "dead jobs do not run");
    t.close().await;
}

async fn permanent_error_goes_straight_to_dead(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("p1", "sub_p")).await.unwrap();
    let worker = spawn_worker(t.store.clone(), worker_options(Q, 2), |_job| async {
        Err::<(), JobError>(JobError::permanent("price price_123 has no tier mapping"))
    });
    wait_for_count(&t.store, &[JobState::Dead], 1, Duration::from_secs(20)).await;
    worker.stop().await;
    let record = t.store.find_by_key(Q, "p1").await.unwrap().unwrap();
    assert_eq!(record.attempts, 1);
    assert_eq!(record.last_error.as_deref(), Some("price price_123 has no tier mapping"));
    t.close().await;
}

async fn job_in_backoff_does_not_block_its_group(b: Backend) {
    let mut cfg = fast_config();
    cfg.retry.base = Duration::from_secs(60);
    cfg.retry.cap = Duration::from_secs(60);
    let t = db(b, cfg).await;
    t.store.enqueue_one(job("poison", "sub_h")).await.unwrap();
    t.store.enqueue_one(job("next", "sub_h")).await.unwrap();
    let poison = t.store.claim(Q, "w", 5).await.unwrap().remove(0);
    assert_eq!(poison.unique_key.as_deref(), Some("poison"));
    assert!(matches!(t.store.fail(&poison, "boom", false).await.unwrap(), FailOutcome::Retrying { .. }));
    let next = t.store.claim(Q, "w", 5).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].unique_key.as_deref(), Some("next"), "the later job runs while the failed one waits");
    t.close().await;
}

async fn retry_and_cancel(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("r1", "sub_r").with_max_attempts(1)).await.unwrap();
    let claimed = t.store.claim(Q, "w", 1).await.unwrap().remove(0);
    assert_eq!(t.store.fail(&claimed, "boom", false).await.unwrap(), FailOutcome::Dead);
    // Retry the dead job: pending again, with a fresh budget, and it runs.
    let id = claimed.lease.job_id;
    assert_eq!(t.store.retry(&Selection::Ids(vec![id])).await.unwrap(), 1);
    let record = t.store.get(id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Pending, 0));
    let again = t.store.claim(Q, "w", 1).await.unwrap().remove(0);
    assert_eq!(again.lease.job_id, id);
    assert!(t.store.complete(&again.lease).await.unwrap());
    // Retrying a succeeded job changes nothing.
    assert_eq!(t.store.retry(&Selection::Ids(vec![id])).await.unwrap(), 0);

    // Cancel a pending job: it never runs. Cancelling twice changes nothing.
    let created = t.store.enqueue_one(job("c1", "sub_c")).await.unwrap();
    let sel = Selection::Ids(vec![created.job_id()]);
    assert_eq!(t.store.cancel(&sel).await.unwrap(), 1);
    assert_eq!(t.store.cancel(&sel).await.unwrap(), 0);
    assert!(t.store.claim(Q, "w", 5).await.unwrap().is_empty());
    assert_eq!(t.store.get(created.job_id()).await.unwrap().unwrap().state, JobState::Cancelled);
    // A running job cannot be cancelled from under its worker.
    t.store.enqueue_one(job("c2", "sub_c2")).await.unwrap();
    let running = t.store.claim(Q, "w", 5).await.unwrap().remove(0);
    assert_eq!(t.store.cancel(&Selection::Ids(vec![running.lease.job_id])).await.unwrap(), 0);
    // Unknown ids are simply not matched.
    assert_eq!(t.store.retry(&Selection::Ids(vec![uuid::Uuid::now_v7()])).await.unwrap(), 0);
    assert!(t.store.get(uuid::Uuid::now_v7()).await.unwrap().is_none());
    t.close().await;
}

async fn bulk_retry_by_filter(b: Backend) {
    let t = db(b, fast_config()).await;
    for i in 0..40 {
        t.store.enqueue_one(job(&format!("d{i}"), &format!("sub_{}", i % 7)).with_max_attempts(1)).await.unwrap();
    }
    // Every job fails once and is dead.
    let worker = spawn_worker(t.store.clone(), worker_options(Q, 8), |_job| async {
        Err::<(), JobError>(JobError::retry("upstream down"))
    });
    wait_for_count(&t.store, &[JobState::Dead], 40, Duration::from_secs(30)).await;
    worker.stop().await;
    let dead = JobFilter { states: vec![JobState::Dead], ..JobFilter::default() };
    assert_eq!(t.store.count(&dead).await.unwrap(), 40);
    // Retry only one group's dead jobs first, then the rest.
    let one_group = JobFilter { group_key: Some("sub_3".into()), ..dead.clone() };
    let n = t.store.retry(&Selection::Filter(one_group)).await.unwrap();
    assert_eq!(n, 6);
    let rest = t.store.retry(&Selection::Filter(dead.clone())).await.unwrap();
    assert_eq!(rest, 34);
    let worker = spawn_worker(t.store.clone(), worker_options(Q, 8), |_job| async { Ok::<(), JobError>(()) });
    wait_for_count(&t.store, &[JobState::Succeeded], 40, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_eq!(t.store.count(&dead).await.unwrap(), 0);
    t.close().await;
}

async fn prune_keeps_keys_inside_the_window(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("k1", "sub_k")).await.unwrap();
    let claimed = t.store.claim(Q, "w", 1).await.unwrap().remove(0);
    assert!(t.store.complete(&claimed.lease).await.unwrap());
    t.store.enqueue_one(job("k2", "sub_k2").with_max_attempts(1)).await.unwrap();
    let k2 = t.store.claim(Q, "w", 1).await.unwrap().remove(0);
    t.store.fail(&k2, "boom", true).await.unwrap();

    // Default window (30 days): nothing is old enough; the key still deduplicates.
    assert_eq!(t.store.prune(false).await.unwrap(), 0);
    assert!(t.store.enqueue_one(job("k1", "sub_k")).await.unwrap().is_duplicate());
    // Past the window: the finished job goes, the dead one stays unless asked.
    let future = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(t.store.prune_before(future, false).await.unwrap(), 1);
    assert!(t.store.find_by_key(Q, "k2").await.unwrap().is_some(), "dead jobs wait for an operator");
    assert_eq!(t.store.prune_before(future, true).await.unwrap(), 1);
    // The key is free again, and the group works as new.
    assert!(!t.store.enqueue_one(job("k1", "sub_k")).await.unwrap().is_duplicate());
    assert_eq!(t.store.claim(Q, "w", 5).await.unwrap().len(), 1);
    t.close().await;
}

async fn operator_views(b: Backend) {
    let t = db(b, fast_config()).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for i in 0..12 {
        t.store.enqueue_one(job(&format!("o{i}"), &format!("sub_{}", i % 3))).await.unwrap();
    }
    let running = t.store.claim(Q, "worker-a", 2).await.unwrap();
    assert_eq!(running.len(), 2);
    let counts = t.store.counts().await.unwrap();
    let by_state: HashMap<JobState, u64> = counts.iter().map(|c| (c.state, c.count)).collect();
    assert_eq!(by_state.get(&JobState::Pending), Some(&10));
    assert_eq!(by_state.get(&JobState::Running), Some(&2));
    let groups = t.store.running_groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|g| g.lease_owner.as_deref() == Some("worker-a") && g.lease_expires_at.is_some()));
    // Filters and paging.
    let pending = JobFilter { states: vec![JobState::Pending], ..JobFilter::default() };
    let page1 = t.store.list(&pending, Page { limit: 4, offset: 0 }).await.unwrap();
    let page2 = t.store.list(&pending, Page { limit: 4, offset: 4 }).await.unwrap();
    assert_eq!((page1.len(), page2.len()), (4, 4));
    assert!(page1.iter().all(|j| !page2.iter().any(|k| k.id == j.id)));
    assert!(page1[0].created_at >= page1[3].created_at, "newest first");
    let by_group = JobFilter { group_key: Some("sub_1".into()), ..JobFilter::default() };
    assert_eq!(t.store.count(&by_group).await.unwrap(), 4);
    let by_key = JobFilter { unique_key: Some("o5".into()), ..JobFilter::default() };
    assert_eq!(t.store.list(&by_key, Page::default()).await.unwrap().len(), 1);
    let in_range = JobFilter {
        created_after: Some(before),
        created_before: Some(chrono::Utc::now() + chrono::Duration::seconds(1)),
        ..JobFilter::default()
    };
    assert_eq!(t.store.count(&in_range).await.unwrap(), 12);
    let too_early = JobFilter { created_before: Some(before), ..JobFilter::default() };
    assert_eq!(t.store.count(&too_early).await.unwrap(), 0);
    assert!(t.store.list(&JobFilter::default(), Page { limit: 0, offset: 0 }).await.is_err());
    assert!(t.store.list(&JobFilter::default(), Page { limit: 5000, offset: 0 }).await.is_err());
    // Oldest due age: pending jobs have waited a little.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(t.store.oldest_due_age(Some(Q)).await.unwrap() >= Duration::from_millis(40));
    assert_eq!(t.store.oldest_due_age(Some("empty-queue")).await.unwrap(), Duration::ZERO);
    // A job's full record.
    let record = t.store.get(running[0].lease.job_id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.payload["group"], record.group_key.as_str());
    assert!(record.started_at.is_some());
    t.store.ping().await.unwrap();
    t.close().await;
}

async fn released_job_is_not_counted_as_an_attempt(b: Backend) {
    let t = db(b, fast_config()).await;
    t.store.enqueue_one(job("rel", "sub_rel")).await.unwrap();
    t.store.enqueue_one(job("rel2", "sub_rel")).await.unwrap();
    let claimed = t.store.claim(Q, "w", 1).await.unwrap().remove(0);
    assert!(t.store.release(&claimed.lease).await.unwrap());
    let record = t.store.get(claimed.lease.job_id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Pending, 0));
    // Still first in its group.
    let again = t.store.claim(Q, "w2", 1).await.unwrap().remove(0);
    assert_eq!(again.lease.job_id, claimed.lease.job_id);
    t.close().await;
}

/// A claim still on its way when the worker shuts down must not keep what it claims until
/// the lease expires: it gives the jobs back as soon as it lands. The claim is held up by a
/// lock another process holds (SQLite: the write lock; PostgreSQL: a table lock on the
/// groups), the worker is stopped, then the lock is let go.
async fn a_claim_landing_after_shutdown_gives_its_jobs_back(b: Backend) {
    let t = db(b, fast_config()).await;
    let created = t.store.enqueue_one(job("late", "sub_late")).await.unwrap();
    let blocker = t.another_process(fast_config()).await;
    let mut hold = blocker.begin().await.unwrap();
    match hold.conn() {
        Conn::Sqlite(c) => {
            sqlx::query("UPDATE subsync_groups SET queue = queue WHERE 0").execute(c).await.unwrap();
        }
        Conn::Postgres(c) => {
            sqlx::query("LOCK TABLE subsync_groups IN EXCLUSIVE MODE").execute(c).await.unwrap();
        }
    }
    let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = runs.clone();
    let mut options = worker_options(Q, 4);
    options.rescue_interval = Duration::from_secs(60);
    let worker = spawn_worker(t.another_process(fast_config()).await, options, move |_job| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok(()) }
    });
    // Let the worker's first claim reach the lock and wait there, then shut the worker down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    hold.rollback().await.unwrap();

    let id = created.job_id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let record = t.store.get(id).await.unwrap().unwrap();
        if record.started_at.is_some() && record.state == JobState::Pending {
            break record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the late claim kept its job (lease 30 s) instead of giving it back: {:?}, started {:?}",
            record.state,
            record.started_at
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.attempts, 0, "a job given back is not an attempt");
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0, "the stopped worker ran nothing");
    // And another worker takes it at once.
    let again = t.store.claim(Q, "next", 1).await.unwrap();
    assert_eq!(again.first().map(|c| c.lease.job_id), Some(id));
    t.close().await;
}

/// Start/end log shared by handlers across workers.
#[derive(Default)]
struct Log {
    active: HashSet<String>,
    overlaps: Vec<String>,
    started: BTreeMap<String, Vec<u64>>,
    runs: u64,
}

fn recording_handler(
    log: Arc<Mutex<Log>>,
    fail_every: Option<u64>,
) -> impl Fn(subsync_queue::Job) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), JobError>> + Send>> + Clone
{
    move |job| {
        let log = log.clone();
        Box::pin(async move {
            let group = job.payload()["group"].as_str().unwrap_or_default().to_string();
            let n = job.payload()["n"].as_u64().unwrap_or_default();
            let run = {
                let mut l = log.lock().unwrap();
                if !l.active.insert(group.clone()) {
                    l.overlaps.push(group.clone());
                }
                l.started.entry(group.clone()).or_default().push(n);
                l.runs += 1;
                l.runs
            };
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
            log.lock().unwrap().active.remove(&group);
            match fail_every {
                Some(k) if run % k == 0 => Err(JobError::retry("flaky")),
                _ => Ok(()),
            }
        })
    }
}

async fn enqueue_groups(store: &Store, groups: usize, per_group: usize) {
    // Interleaved across groups, in order within each group.
    for n in 0..per_group {
        for g in 0..groups {
            let group = format!("sub_{g}");
            store
                .enqueue_one(
                    NewJob::new(Q, json!({ "group": group, "n": n }))
                        .with_unique_key(format!("evt_{g}_{n}"))
                        .with_group(&group),
                )
                .await
                .unwrap();
        }
    }
}

async fn workers_across_processes_never_overlap_and_keep_fifo(b: Backend) {
    let t = db(b, fast_config()).await;
    let (groups, per_group) = (25, 12);
    enqueue_groups(&t.store, groups, per_group).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let store = t.another_process(fast_config()).await;
        workers.push(spawn_worker(store, worker_options(Q, 6), recording_handler(log.clone(), None)));
    }
    let total = (groups * per_group) as u64;
    wait_for_count(&t.store, &[JobState::Succeeded], total, Duration::from_secs(60)).await;
    for w in workers {
        w.stop().await;
    }
    {
        let log = log.lock().unwrap();
        assert!(log.overlaps.is_empty(), "groups ran two jobs at once: {:?}", log.overlaps);
        assert_eq!(log.runs, total, "each job ran exactly once");
        for (group, order) in &log.started {
            let expected: Vec<u64> = (0..per_group as u64).collect();
            assert_eq!(order, &expected, "group {group} ran out of order");
        }
    }
    t.close().await;
}

async fn flaky_handlers_still_never_overlap(b: Backend) {
    let t = db(b, fast_config()).await;
    let (groups, per_group) = (10, 10);
    enqueue_groups(&t.store, groups, per_group).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let store = t.another_process(fast_config()).await;
        workers.push(spawn_worker(store, worker_options(Q, 8), recording_handler(log.clone(), Some(4))));
    }
    wait_for_count(&t.store, &[JobState::Succeeded], (groups * per_group) as u64, Duration::from_secs(60)).await;
    for w in workers {
        w.stop().await;
    }
    {
        let log = log.lock().unwrap();
        assert!(log.overlaps.is_empty(), "groups ran two jobs at once: {:?}", log.overlaps);
        assert!(log.runs > (groups * per_group) as u64, "some runs failed and were retried");
    }
    t.close().await;
}

async fn killed_worker_loses_its_jobs_to_another(b: Backend) {
    let mut cfg = fast_config();
    cfg.lease = Duration::from_millis(500);
    let t = db(b, cfg.clone()).await;
    enqueue_groups(&t.store, 4, 3).await;
    // The first worker hangs forever in every job, then is killed without clean-up.
    let hung = spawn_worker(t.another_process(cfg.clone()).await, worker_options(Q, 4), |_job| async {
        std::future::pending::<()>().await;
        Ok::<(), JobError>(())
    });
    let running = JobFilter { states: vec![JobState::Running], ..JobFilter::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.store.count(&running).await.unwrap() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "hung worker never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hung.kill();
    // Its jobs come back after the lease and a healthy worker finishes everything.
    let log = Arc::new(Mutex::new(Log::default()));
    let healthy =
        spawn_worker(t.another_process(cfg).await, worker_options(Q, 4), recording_handler(log.clone(), None));
    wait_for_count(&t.store, &[JobState::Succeeded], 12, Duration::from_secs(30)).await;
    healthy.stop().await;
    assert!(log.lock().unwrap().overlaps.is_empty());
    let all = t.store.list(&JobFilter::default(), Page::default()).await.unwrap();
    let rescued = all.iter().filter(|j| j.attempts == 2).count();
    assert_eq!(rescued, 4, "the four jobs the killed worker held took a second attempt");
    t.close().await;
}

/// PostgreSQL only (SQLite has no row versions to look at): an enqueue into a group that is
/// already due as early locks the group row but does not rewrite it, so a busy subscription
/// costs no group-row version (and index entries) per event; an earlier job still lowers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_row_is_rewritten_only_when_it_becomes_due_earlier() {
    let t = TestDb::with_config(Backend::Postgres, fast_config()).await;
    let Dialect::Postgres(pool) = t.store.pool() else { unreachable!("a PostgreSQL store") };
    let pool = pool.clone();
    let row = |group: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<chrono::DateTime<chrono::Utc>>)>(
                "SELECT xmin::text, next_run_at FROM subsync_groups WHERE queue = $1 AND group_key = $2",
            )
            .bind(Q)
            .bind(group)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    t.store.enqueue_one(job("busy1", "sub_busy")).await.unwrap();
    let first = row("sub_busy").await;
    t.store.enqueue_one(job("busy2", "sub_busy")).await.unwrap();
    let mut tx = t.store.begin().await.unwrap();
    t.store.enqueue_many(&mut tx, vec![job("busy3", "sub_busy"), job("busy4", "sub_busy")]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(row("sub_busy").await, first, "a later job leaves the group row as it was");

    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    t.store.enqueue_one(job("delayed", "sub_delayed").with_run_at(later)).await.unwrap();
    let delayed = row("sub_delayed").await;
    t.store.enqueue_one(job("due_now", "sub_delayed")).await.unwrap();
    let lowered = row("sub_delayed").await;
    assert_ne!(lowered.0, delayed.0, "an earlier job rewrites the row");
    assert!(lowered.1.expect("due") < later, "and makes the group due earlier: {lowered:?}");
    t.close().await;
}
