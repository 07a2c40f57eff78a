//! Enqueueing as part of the caller's own PostgreSQL statement.
//!
//! A transaction costs PostgreSQL a round trip each for BEGIN and COMMIT, and the server's
//! per-statement work for each. A producer that writes its own rows together with jobs (the
//! intake: an event row and its sync job) can do both in **one autocommitted statement** by
//! putting the queue's CTEs in its own `WITH`: atomic like a transaction, one round trip.
//! The queue keeps owning its SQL: the caller sees only the CTE names and their columns.
//!
//! ```text
//! WITH <caller's CTEs>, {PgJobBatch::ctes(n)}, <caller's CTEs reading `enqueued`>
//! SELECT …
//! ```
//! Then bind the caller's parameters `$1..$(n-1)` followed by [`PgJobBatch::bind`], run it,
//! and call [`crate::Store::jobs_enqueued`] if it created jobs, so workers wake up at once.

use chrono::{DateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use uuid::Uuid;

use crate::model::{JobId, NewJob};

/// Validated jobs laid out as the parameters of [`PgJobBatch::ctes`]. Build it with
/// [`crate::Store::pg_job_batch`].
#[derive(Debug, Clone)]
pub struct PgJobBatch {
    ids: Vec<Uuid>,
    queues: Vec<String>,
    keys: Vec<Option<String>>,
    groups: Vec<String>,
    payloads: Vec<serde_json::Value>,
    attempts: Vec<i32>,
    run_at: Vec<Option<DateTime<Utc>>>,
}

impl PgJobBatch {
    /// How many parameters [`PgJobBatch::bind`] adds.
    pub const PARAMS: usize = 7;

    /// Lays out `jobs` (already validated; id and attempt budget chosen).
    pub(crate) fn new<'a>(jobs: impl IntoIterator<Item = &'a (NewJob, JobId, u32)>) -> Self {
        let mut b = Self {
            ids: Vec::new(),
            queues: Vec::new(),
            keys: Vec::new(),
            groups: Vec::new(),
            payloads: Vec::new(),
            attempts: Vec::new(),
            run_at: Vec::new(),
        };
        for (job, id, max_attempts) in jobs {
            b.ids.push(*id);
            b.queues.push(job.queue.clone());
            b.keys.push(job.unique_key.clone());
            // A job without a group is its own group.
            b.groups.push(if job.group_key.is_empty() { id.to_string() } else { job.group_key.clone() });
            b.payloads.push(job.payload.clone());
            b.attempts.push(i32::try_from(*max_attempts).unwrap_or(i32::MAX));
            b.run_at.push(job.run_at);
        }
        b
    }

    /// CTEs that insert the jobs (parameters `$first` to `$first + 6`), skipping keys that
    /// exist, and mark their groups due. `enqueued(id, queue, unique_key, group_key, run_at)`
    /// holds the jobs created; a job whose key was taken is not in it. A group already due as
    /// early is locked but not rewritten (no new row version per event of a busy group). Rows are written in key
    /// order and groups in group order, so overlapping concurrent batches wait for each
    /// other instead of deadlocking.
    pub fn ctes(first: usize) -> String {
        let p = |i: usize| first + i;
        format!(
            "enqueue_input AS ( \
               SELECT * FROM unnest(${}::uuid[], ${}::text[], ${}::text[], ${}::text[], ${}::jsonb[], ${}::int4[], ${}::timestamptz[]) \
                 WITH ORDINALITY AS t(id, queue, unique_key, group_key, payload, max_attempts, run_at, ord) \
             ), enqueued AS ( \
               INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, max_attempts, run_at) \
               SELECT id, queue, unique_key, group_key, payload, max_attempts, COALESCE(run_at, now()) \
               FROM enqueue_input ORDER BY queue, unique_key, ord \
               ON CONFLICT (queue, unique_key) DO NOTHING \
               RETURNING id, queue, unique_key, group_key, run_at \
             ), enqueued_groups AS ( \
               INSERT INTO subsync_groups (queue, group_key, next_run_at) \
               SELECT queue, group_key, min(run_at) FROM enqueued GROUP BY queue, group_key ORDER BY queue, group_key \
               ON CONFLICT (queue, group_key) \
               DO UPDATE SET next_run_at = EXCLUDED.next_run_at \
                 WHERE subsync_groups.next_run_at IS NULL OR subsync_groups.next_run_at > EXCLUDED.next_run_at \
             )",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        )
    }

    /// Binds the batch as the next [`PgJobBatch::PARAMS`] parameters of `query`.
    pub fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(self.ids)
            .bind(self.queues)
            .bind(self.keys)
            .bind(self.groups)
            .bind(self.payloads)
            .bind(self.attempts)
            .bind(self.run_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctes_number_their_parameters_from_first() {
        let sql = PgJobBatch::ctes(11);
        for n in 11..18 {
            assert!(sql.contains(&format!("${n}::")), "{n} missing: {sql}");
        }
        assert!(!sql.contains("$10::") && !sql.contains("$18::"), "{sql}");
    }

    #[test]
    fn a_job_without_a_group_is_its_own_group() {
        let id = Uuid::now_v7();
        let jobs = [(NewJob::new("q", serde_json::json!({})), id, 3)];
        let batch = PgJobBatch::new(&jobs);
        assert_eq!(batch.groups, vec![id.to_string()]);
        assert_eq!(batch.ids, vec![id]);
        assert_eq!(batch.attempts, vec![3]);
    }
}
