//! Counters of what requests and background work did, served at
//! `GET /metrics` in Prometheus' text format. They count on this node since
//! it started.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One door and operation's requests: counts by status code, and latencies.
#[derive(Default)]
struct Series {
    by_status: BTreeMap<u16, u64>,
    /// Requests at most each bucket's bound (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
    count: u64,
}

/// Requests by door and operation. Doors name only operations they know
/// (from their routes or the AWS models), so the label set stays bounded.
pub struct Requests(Mutex<BTreeMap<(&'static str, String), Series>>);

impl Requests {
    const fn new() -> Requests {
        Requests(Mutex::new(BTreeMap::new()))
    }

    pub fn observe(&self, door: &'static str, operation: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut all = self.0.lock().expect("metrics lock");
        let series = all.entry((door, operation.to_string())).or_default();
        *series.by_status.entry(status).or_default() += 1;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            series.buckets[i] += 1;
        }
        series.sum_seconds += seconds;
        series.count += 1;
    }

    fn render(&self, text: &mut String) {
        use std::fmt::Write as _;
        let all = self.0.lock().expect("metrics lock");
        text.push_str(
            "# HELP berth_requests_total Requests answered, by front door, operation and status code.\n\
             # TYPE berth_requests_total counter\n",
        );
        for ((door, operation), series) in all.iter() {
            for (status, n) in &series.by_status {
                let _ = writeln!(
                    text,
                    "berth_requests_total{{door=\"{door}\",operation=\"{operation}\",code=\"{status}\"}} {n}"
                );
            }
        }
        text.push_str(
            "# HELP berth_request_duration_seconds Time to answer a request, by front door and operation.\n\
             # TYPE berth_request_duration_seconds histogram\n",
        );
        for ((door, operation), series) in all.iter() {
            let labels = format!("door=\"{door}\",operation=\"{operation}\"");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(series.buckets) {
                cumulative += n;
                let _ = writeln!(
                    text,
                    "berth_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                text,
                "berth_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 berth_request_duration_seconds_sum{{{labels}}} {}\n\
                 berth_request_duration_seconds_count{{{labels}}} {}",
                series.count, series.sum_seconds, series.count
            );
        }
    }
}

/// Jobs settled on this node, by kind and outcome.
pub struct Settled(Mutex<BTreeMap<(String, &'static str), u64>>);

pub struct Metrics {
    pub requests: Requests,
    settled: Settled,
    pub gc_runs: Counter,
    pub gc_blobs: Counter,
    pub gc_bytes: Counter,
    pub lifecycle_expired: Counter,
    pub uploads_abandoned: Counter,
    pub connections_refused: Counter,
    pub slow_bodies_dropped: Counter,
    pub pull_through_stale: Counter,
    pub webhook_dead_letters: Counter,
}

pub static METRICS: Metrics = Metrics {
    requests: Requests::new(),
    settled: Settled(Mutex::new(BTreeMap::new())),
    gc_runs: Counter::new(),
    gc_blobs: Counter::new(),
    gc_bytes: Counter::new(),
    lifecycle_expired: Counter::new(),
    uploads_abandoned: Counter::new(),
    connections_refused: Counter::new(),
    slow_bodies_dropped: Counter::new(),
    pull_through_stale: Counter::new(),
    webhook_dead_letters: Counter::new(),
};

impl Metrics {
    /// Counts a cached tag served without the upstream's word on it.
    pub fn pull_through_stale(&self) {
        self.pull_through_stale.inc();
    }

    /// Counts an event a webhook gave up on.
    pub fn webhook_dead_letter(&self) {
        self.webhook_dead_letters.inc();
    }

    /// Counts a job's end on this node.
    pub fn jobs_settled(&self, kind: &str, outcome: &berth_store::JobOutcome<'_>) {
        let outcome = match outcome {
            berth_store::JobOutcome::Done => "done",
            berth_store::JobOutcome::Retry { .. } => "retried",
            berth_store::JobOutcome::Failed { .. } => "failed",
        };
        *self
            .settled
            .0
            .lock()
            .expect("metrics lock")
            .entry((kind.to_string(), outcome))
            .or_default() += 1;
    }

    /// The queue as the database holds it (all nodes): jobs by kind and state.
    pub fn render_queue(counts: &[(String, String, i64)]) -> String {
        let mut text = String::from(
            "# HELP berth_jobs Jobs in the durable queue (all nodes), by kind and state.\n\
             # TYPE berth_jobs gauge\n",
        );
        for (kind, state, n) in counts {
            text.push_str(&format!(
                "berth_jobs{{kind=\"{kind}\",state=\"{state}\"}} {n}\n"
            ));
        }
        text
    }

    /// The counters in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let counters = [
            (
                "berth_gc_runs_total",
                "Garbage collection passes completed.",
                &self.gc_runs,
            ),
            (
                "berth_gc_reclaimed_blobs_total",
                "Blobs reclaimed by garbage collection.",
                &self.gc_blobs,
            ),
            (
                "berth_gc_reclaimed_bytes_total",
                "Bytes reclaimed by garbage collection.",
                &self.gc_bytes,
            ),
            (
                "berth_lifecycle_expired_images_total",
                "Images expired by lifecycle policies.",
                &self.lifecycle_expired,
            ),
            (
                "berth_uploads_abandoned_total",
                "Abandoned uploads removed.",
                &self.uploads_abandoned,
            ),
            (
                "berth_pull_through_stale_total",
                "Cached tags served because the upstream could not be asked about them.",
                &self.pull_through_stale,
            ),
            (
                "berth_webhook_dead_letters_total",
                "Events a webhook gave up delivering after every attempt.",
                &self.webhook_dead_letters,
            ),
            (
                "berth_connections_refused_total",
                "Connections closed at once because --max-connections (or --max-connections-per-address) were open.",
                &self.connections_refused,
            ),
            (
                "berth_slow_bodies_dropped_total",
                "Request bodies ended because they arrived slower than --min-body-rate.",
                &self.slow_bodies_dropped,
            ),
        ];
        let mut text = String::new();
        for (name, help, counter) in counters {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.get()
            ));
        }
        self.requests.render(&mut text);
        text.push_str(
            "# HELP berth_jobs_settled_total Jobs this node ran to an end, by kind and outcome.\n\
             # TYPE berth_jobs_settled_total counter\n",
        );
        for ((kind, outcome), n) in self.settled.0.lock().expect("metrics lock").iter() {
            text.push_str(&format!(
                "berth_jobs_settled_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        text
    }
}
