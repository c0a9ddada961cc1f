//! Request outcomes: latencies, bytes and errors by kind, shared by concurrent
//! clients of one scenario.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latency percentiles of `samples` (nearest rank), `None` when empty.
pub fn latency(samples: &mut [Duration]) -> Option<Latency> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e3
    };
    Some(Latency {
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

#[derive(Default)]
struct Inner {
    latencies: Vec<Duration>,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    first_failure: Option<String>,
}

/// What the clients of one scenario recorded.
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

pub struct Recorded {
    pub requests: u64,
    pub bytes: u64,
    pub latency: Option<Latency>,
    pub errors: BTreeMap<String, u64>,
    /// The first failure in full, to say what went wrong.
    pub first_failure: Option<String>,
}

impl Recorder {
    /// Records one request that started at `start` and moved `bytes`.
    pub fn ok(&self, start: Instant, bytes: u64) {
        let elapsed = start.elapsed();
        let mut inner = self.inner.lock().expect("recorder poisoned");
        inner.latencies.push(elapsed);
        inner.bytes += bytes;
    }

    pub fn failed(&self, failure: super::client::Failure) {
        let mut inner = self.inner.lock().expect("recorder poisoned");
        *inner.errors.entry(failure.kind.clone()).or_default() += 1;
        inner
            .first_failure
            .get_or_insert_with(|| failure.to_string());
    }

    pub fn finish(self) -> Recorded {
        let mut inner = self.inner.into_inner().expect("recorder poisoned");
        Recorded {
            requests: inner.latencies.len() as u64,
            bytes: inner.bytes,
            latency: latency(&mut inner.latencies),
            errors: inner.errors,
            first_failure: inner.first_failure,
        }
    }
}

/// Runs `count` clients at once, `client(i)` each, until all have ended.
pub async fn together<F: Future<Output = ()> + Send + 'static>(
    count: usize,
    client: impl FnMut(usize) -> F,
) {
    let tasks: Vec<_> = (0..count).map(client).map(tokio::spawn).collect();
    for task in tasks {
        task.await.expect("bench client panicked");
    }
}

/// What the clients that shared `recorder` recorded, and the time since `start`.
pub fn finish(
    recorder: Arc<Recorder>,
    start: Instant,
    progress: &ProgressBar,
) -> (Recorded, Duration) {
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    let recorder = Arc::into_inner(recorder).expect("every client has ended");
    (recorder.finish(), elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = latency(&mut samples).unwrap();
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(latency(&mut []), None);
        let mut one = [Duration::from_millis(7)];
        assert_eq!(latency(&mut one).unwrap().p50_ms, 7.0);
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let r = Recorder::default();
        r.ok(Instant::now(), 10);
        let failure = |kind: &str| super::super::client::Failure {
            kind: kind.into(),
            detail: "detail".into(),
        };
        r.failed(failure("HTTP 404"));
        r.failed(failure("HTTP 404"));
        r.failed(failure("connection"));
        let done = r.finish();
        assert_eq!(done.requests, 1);
        assert_eq!(done.bytes, 10);
        assert_eq!(done.errors["HTTP 404"], 2);
        assert_eq!(done.errors["connection"], 1);
        assert_eq!(done.first_failure.as_deref(), Some("HTTP 404: detail"));
    }
}
