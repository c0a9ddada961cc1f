//! Counters of what background work did, served at `GET /metrics` in
//! Prometheus' text format. They count on this node since it started.

use std::sync::atomic::{AtomicU64, Ordering};

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

pub struct Metrics {
    pub gc_runs: Counter,
    pub gc_blobs: Counter,
    pub gc_bytes: Counter,
    pub lifecycle_expired: Counter,
    pub uploads_abandoned: Counter,
    pub connections_refused: Counter,
}

pub static METRICS: Metrics = Metrics {
    gc_runs: Counter::new(),
    gc_blobs: Counter::new(),
    gc_bytes: Counter::new(),
    lifecycle_expired: Counter::new(),
    uploads_abandoned: Counter::new(),
    connections_refused: Counter::new(),
};

impl Metrics {
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
                "berth_connections_refused_total",
                "Connections closed at once because --max-connections were open.",
                &self.connections_refused,
            ),
        ];
        let mut text = String::new();
        for (name, help, counter) in counters {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.get()
            ));
        }
        text
    }
}
