//! Workers for the durable job queue (`berth_store::jobs`): every node runs
//! a few; each claims a due job, renews its lease with heartbeats while the
//! handler runs, and settles it: done, retried with exponential back-off, or
//! failed after its attempts. A node that dies mid-job stops heartbeating;
//! another node claims the job again once the lease has lapsed. Periodic
//! work (upload clean-up, lifecycle, GC, credential purge) is queued as
//! singleton jobs by every node's scheduler, so it runs on one node at a time.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_store::{Job, JobOutcome, MetadataStore, NewJob, now_millis};
use tokio::sync::watch;
use tracing::Instrument;

/// What a handler returns: `Err` with a message to retry (or fail at last).
pub type JobResult = Result<(), String>;
type Handler =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = JobResult> + Send>> + Send + Sync + 'static>;

/// How the queue behaves on this node.
#[derive(Clone, Copy, Debug)]
pub struct JobsConfig {
    /// Jobs this node runs at once.
    pub workers: usize,
    /// A claim lapses when its heartbeat is older than this; heartbeats are
    /// sent three times per lease.
    pub lease: Duration,
    /// The first retry waits this long; each further one twice as long (at
    /// most an hour).
    pub backoff: Duration,
    /// How long `SIGTERM` waits for running jobs before abandoning them
    /// (another node claims them when their lease lapses).
    pub drain: Duration,
    /// How often an idle worker looks for due jobs.
    pub poll: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 2,
            lease: Duration::from_secs(60),
            backoff: Duration::from_secs(10),
            drain: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        }
    }
}

/// Work queued every `interval`, one at a time across nodes.
struct Periodic {
    kind: &'static str,
    interval: Duration,
}

/// The queue on this node. Long-lived; at shutdown its workers stop claiming,
/// finish what they run within `drain`, and return.
pub struct Jobs {
    store: Arc<dyn MetadataStore>,
    config: JobsConfig,
    /// This node, as a worker name prefix.
    node: String,
    /// Handlers by job kind; set before `run`.
    handlers: Mutex<HashMap<&'static str, Handler>>,
    periodic: Mutex<Vec<Periodic>>,
    /// Jobs running on this node now (id → kind), for `/readyz`.
    running: Mutex<BTreeMap<i64, String>>,
}

impl Jobs {
    pub fn new(store: Arc<dyn MetadataStore>, node: &str, config: JobsConfig) -> Jobs {
        Jobs {
            store,
            config,
            node: node.to_string(),
            handlers: Mutex::default(),
            periodic: Mutex::default(),
            running: Mutex::default(),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn handle<F, Fut>(&self, kind: &'static str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |job| Box::pin(handler(job)));
        self.handlers
            .lock()
            .expect("handlers lock")
            .insert(kind, handler);
    }

    /// Queues a job of `kind` (with its handler) every `interval`.
    pub fn every<F, Fut>(&self, kind: &'static str, interval: Duration, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        self.handle(kind, handler);
        self.periodic
            .lock()
            .expect("periodic lock")
            .push(Periodic { kind, interval });
    }

    /// Jobs in the queue by kind and state (all nodes): (kind, state, count).
    pub async fn counts(&self) -> Result<Vec<(String, String, i64)>, berth_store::StoreError> {
        self.store.job_counts().await
    }

    /// Kinds of the jobs running on this node now.
    pub fn running(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("running lock")
            .values()
            .cloned()
            .collect()
    }

    /// Runs the scheduler and the workers until `stop` turns true, then
    /// lets running jobs finish within the drain deadline.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().schedule(stop.clone()));
        for n in 0..self.config.workers.max(1) {
            tasks.spawn(
                self.clone()
                    .work(format!("{}/{n}", self.node), stop.clone()),
            );
        }
        let mut stopped = stop.clone();
        let _ = stopped.wait_for(|s| *s).await;
        let drained = tokio::time::timeout(self.config.drain, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = ?self.running(),
                "jobs still running at the drain deadline are abandoned; another node takes them over"
            );
            tasks.abort_all();
        }
    }

    /// Queues each periodic job when its interval has passed since the last
    /// one finished (the singleton key keeps it to one at a time).
    async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let tick = self.config.poll.max(Duration::from_millis(200));
        loop {
            let due: Vec<(&'static str, Duration)> = self
                .periodic
                .lock()
                .expect("periodic lock")
                .iter()
                .map(|p| (p.kind, p.interval))
                .collect();
            for (kind, interval) in due {
                let now = now_millis();
                let last = match self.store.last_finished(kind).await {
                    Ok(last) => last,
                    Err(e) => {
                        tracing::warn!(job = kind, error = %e, "could not read the job queue");
                        continue;
                    }
                };
                if last.is_some_and(|at| now - at < interval.as_millis() as i64) {
                    continue;
                }
                let job = NewJob {
                    kind,
                    payload: "{}",
                    singleton: Some(kind),
                    max_attempts: 3,
                    run_after: now,
                };
                if let Err(e) = self.store.enqueue_job(&job, now).await {
                    tracing::warn!(job = kind, error = %e, "could not queue a periodic job");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn work(self: Arc<Self>, worker: String, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = now_millis();
            let stale_before = now - self.config.lease.as_millis() as i64;
            // Only kinds this node has a handler for (a node without a
            // builder leaves build jobs to the nodes that have one).
            let kinds = {
                let handlers = self.handlers.lock().expect("handlers lock");
                serde_json::to_string(&handlers.keys().collect::<Vec<_>>()).expect("names")
            };
            match self
                .store
                .claim_job(&worker, &kinds, now, stale_before)
                .await
            {
                Ok(Some(job)) => self.run_one(&worker, job).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(worker, error = %e, "could not claim a job");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
    }

    /// Runs one claimed job to its end, heartbeating meanwhile, and settles it.
    async fn run_one(&self, worker: &str, job: Job) {
        let span =
            tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempts);
        self.run_claimed(worker, job).instrument(span).await
    }

    async fn run_claimed(&self, worker: &str, job: Job) {
        let (id, kind, attempts, max) = (job.id, job.kind.clone(), job.attempts, job.max_attempts);
        let handler = self
            .handlers
            .lock()
            .expect("handlers lock")
            .get(kind.as_str())
            .cloned();
        let result = match handler {
            None => Err(format!("no handler for job kind {kind} on this node")),
            Some(_) if attempts > max => {
                Err(format!("abandoned by its workers {} times", attempts - 1))
            }
            Some(handler) => {
                self.running
                    .lock()
                    .expect("running lock")
                    .insert(id, kind.clone());
                let heartbeat = async {
                    let every = self.config.lease / 3;
                    loop {
                        tokio::time::sleep(every).await;
                        match self.store.heartbeat_job(id, worker, now_millis()).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!("the job's claim was lost; it runs elsewhere now");
                                return;
                            }
                            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                        }
                    }
                };
                let result = tokio::select! {
                    result = handler(job) => result,
                    () = heartbeat => Err("claim lost".to_string()),
                };
                self.running.lock().expect("running lock").remove(&id);
                result
            }
        };
        let now = now_millis();
        let outcome = match &result {
            Ok(()) => JobOutcome::Done,
            Err(error) if attempts < max => {
                let backoff = self.config.backoff.as_millis() as i64
                    * 2i64.saturating_pow(attempts.saturating_sub(1).clamp(0, 20) as u32);
                JobOutcome::Retry {
                    error,
                    at: now + backoff.min(3_600_000),
                }
            }
            Err(error) => JobOutcome::Failed { error },
        };
        match &outcome {
            JobOutcome::Done => tracing::debug!("job done"),
            JobOutcome::Retry { error, at } => {
                tracing::warn!(
                    error,
                    retry_in_ms = at - now,
                    "job failed; it will be retried"
                )
            }
            JobOutcome::Failed { error } => tracing::error!(error, "job failed for good"),
        }
        crate::metrics::METRICS.jobs_settled(&kind, &outcome);
        if let Err(e) = self.store.settle_job(id, worker, outcome, now).await {
            tracing::warn!(error = %e, "could not record the job's end; it will run again");
        }
    }
}

/// Queues a job of `kind` about one image (`{"repository", "digest"}`),
/// at most one queued or running per kind and image.
pub async fn enqueue_for_image(
    store: &dyn MetadataStore,
    kind: &'static str,
    repository: &str,
    digest: &str,
    max_attempts: i64,
) -> Result<(), berth_store::StoreError> {
    let payload = serde_json::json!({"repository": repository, "digest": digest}).to_string();
    let singleton = format!("{kind}:{repository}@{digest}");
    let now = now_millis();
    store
        .enqueue_job(
            &NewJob {
                kind,
                payload: &payload,
                singleton: Some(&singleton),
                max_attempts,
                run_after: now,
            },
            now,
        )
        .await?;
    Ok(())
}

/// The image a job made by [`enqueue_for_image`] is about: (repository, digest).
pub fn image_of(job: &Job) -> Result<(String, String), String> {
    let payload: serde_json::Value =
        serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
    Ok((
        payload["repository"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        payload["digest"].as_str().unwrap_or_default().to_string(),
    ))
}
