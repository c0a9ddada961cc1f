//! The durable job queue: work any node's workers claim (lease renewed by
//! heartbeats; a job whose worker died is claimed again once its heartbeat
//! is stale), retried with back-off, finished once. Periodic work is a job
//! with a singleton key: at most one of them queued or running at a time.
//! Plain SQL both databases accept, implemented for both backends by
//! [`impl_job_store`]; claiming skips rows other claimers hold on PostgreSQL
//! (`FOR UPDATE SKIP LOCKED`), and is serialized by SQLite's single writer.

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    /// JSON text.
    pub payload: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub singleton: Option<String>,
    /// Claims so far (the current one included, while running).
    pub attempts: i64,
    pub max_attempts: i64,
    /// Milliseconds: not claimed before.
    pub run_after: i64,
    pub worker: Option<String>,
    pub heartbeat_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A job to queue.
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    /// At most one queued-or-running job holds this key.
    pub singleton: Option<&'a str>,
    pub max_attempts: i64,
    pub run_after: i64,
}

/// Queues `job` through `$executor` (a pool, or a transaction so that the
/// job is queued with the change that calls for it); the id, or `None`
/// when its singleton key is already queued or running.
macro_rules! insert_job {
    ($executor:expr, $job:expr, $now:expr) => {{
        let job: &$crate::jobs::NewJob<'_> = $job;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, state, singleton, attempts, max_attempts, run_after, created_at)
             VALUES ($1, $2, 'queued', $3, 0, $4, $5, $6)
             ON CONFLICT (singleton) WHERE state IN ('queued', 'running') DO NOTHING
             RETURNING id",
        )
        .bind(job.kind)
        .bind(job.payload)
        .bind(job.singleton)
        .bind(job.max_attempts)
        .bind(job.run_after)
        .bind($now)
        .fetch_optional($executor)
        .await?;
        id
    }};
}

pub(crate) use insert_job;

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Queues a job; `None` when its singleton key is already queued or running.
    async fn enqueue_job(&self, job: &NewJob<'_>, now: i64) -> Result<Option<i64>>;
    /// Claims the next due job of one of `kinds` (a JSON array of names)
    /// for `worker`: a queued one whose time has come, or a running one
    /// whose heartbeat is older than `stale_before`.
    async fn claim_job(
        &self,
        worker: &str,
        kinds: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<Option<Job>>;
    /// Renews `worker`'s lease on job `id`; false if the job is no longer its.
    async fn heartbeat_job(&self, id: i64, worker: &str, now: i64) -> Result<bool>;
    /// Ends `worker`'s claim: `done`, `failed` (with `error`), or back to
    /// `queued` until `retry_at` (with `error`). False if it was not its.
    async fn settle_job(
        &self,
        id: i64,
        worker: &str,
        outcome: JobOutcome<'_>,
        now: i64,
    ) -> Result<bool>;
    /// When the last job holding `singleton` finished (done or failed).
    async fn last_finished(&self, singleton: &str) -> Result<Option<i64>>;
    /// Jobs by kind and state: (kind, state, count).
    async fn job_counts(&self) -> Result<Vec<(String, String, i64)>>;
    /// The newest `limit` jobs, newest first.
    async fn recent_jobs(&self, limit: u32) -> Result<Vec<Job>>;
    /// Forgets jobs that finished before `cutoff`.
    async fn purge_jobs(&self, cutoff: i64) -> Result<u64>;
}

#[derive(Clone, Copy, Debug)]
pub enum JobOutcome<'a> {
    Done,
    Retry { error: &'a str, at: i64 },
    Failed { error: &'a str },
}

pub(crate) const JOB_COLUMNS: &str = "id, kind, payload, state, singleton, attempts, max_attempts, \
     run_after, worker, heartbeat_at, last_error, created_at, finished_at";

/// `$lock` is what the claim's inner `SELECT` ends with: `FOR UPDATE SKIP
/// LOCKED` on PostgreSQL, nothing on SQLite (one writer at a time).
macro_rules! impl_job_store {
    ($store:ty, $write:ident, $read:ident, $lock:literal, $kinds:literal) => {
        #[async_trait::async_trait]
        impl $crate::jobs::JobStore for $store {
            async fn enqueue_job(
                &self,
                job: &$crate::jobs::NewJob<'_>,
                now: i64,
            ) -> $crate::Result<Option<i64>> {
                Ok($crate::jobs::insert_job!(&self.$write, job, now))
            }

            async fn claim_job(
                &self,
                worker: &str,
                kinds: &str,
                now: i64,
                stale_before: i64,
            ) -> $crate::Result<Option<$crate::jobs::Job>> {
                // Looked for on the read side first: idle workers never write.
                let due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM jobs
                     WHERE ((state = 'queued' AND run_after <= $1) OR (state = 'running' AND heartbeat_at < $2))
                       AND kind IN ({})
                     LIMIT 1",
                    $kinds.replace("$K", "$3")
                )))
                .bind(now)
                .bind(stale_before)
                .bind(kinds)
                .fetch_optional(&self.$read)
                .await?;
                if due.is_none() {
                    return Ok(None);
                }
                let job: Option<$crate::jobs::Job> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE jobs SET state = 'running', worker = $1, heartbeat_at = $2, attempts = attempts + 1
                     WHERE id = (SELECT id FROM jobs
                                 WHERE ((state = 'queued' AND run_after <= $2)
                                    OR (state = 'running' AND heartbeat_at < $3))
                                   AND kind IN ({})
                                 ORDER BY run_after, id LIMIT 1 {})
                     RETURNING {}",
                    $kinds.replace("$K", "$4"),
                    $lock,
                    $crate::jobs::JOB_COLUMNS
                )))
                .bind(worker)
                .bind(now)
                .bind(stale_before)
                .bind(kinds)
                .fetch_optional(&self.$write)
                .await?;
                Ok(job)
            }

            async fn heartbeat_job(&self, id: i64, worker: &str, now: i64) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
                )
                .bind(now)
                .bind(id)
                .bind(worker)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn settle_job(
                &self,
                id: i64,
                worker: &str,
                outcome: $crate::jobs::JobOutcome<'_>,
                now: i64,
            ) -> $crate::Result<bool> {
                use $crate::jobs::JobOutcome;
                let (state, error, run_after, finished_at) = match outcome {
                    JobOutcome::Done => ("done", None, None, Some(now)),
                    JobOutcome::Retry { error, at } => ("queued", Some(error), Some(at), None),
                    JobOutcome::Failed { error } => ("failed", Some(error), None, Some(now)),
                };
                let done = sqlx::query(
                    "UPDATE jobs SET state = $1, last_error = COALESCE($2, last_error),
                         run_after = COALESCE($3, run_after), finished_at = $4, heartbeat_at = NULL
                     WHERE id = $5 AND worker = $6 AND state = 'running'",
                )
                .bind(state)
                .bind(error)
                .bind(run_after)
                .bind(finished_at)
                .bind(id)
                .bind(worker)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn last_finished(&self, singleton: &str) -> $crate::Result<Option<i64>> {
                let at: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(finished_at) FROM jobs WHERE singleton = $1 AND state IN ('done', 'failed')",
                )
                .bind(singleton)
                .fetch_one(&self.$read)
                .await?;
                Ok(at)
            }

            async fn job_counts(&self) -> $crate::Result<Vec<(String, String, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
                )
                .fetch_all(&self.$read)
                .await?)
            }

            async fn recent_jobs(&self, limit: u32) -> $crate::Result<Vec<$crate::jobs::Job>> {
                let jobs: Vec<$crate::jobs::Job> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM jobs ORDER BY id DESC LIMIT $1",
                    $crate::jobs::JOB_COLUMNS
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                Ok(jobs)
            }

            async fn purge_jobs(&self, cutoff: i64) -> $crate::Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM jobs WHERE state IN ('done', 'failed') AND finished_at < $1",
                )
                .bind(cutoff)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_job_store;
