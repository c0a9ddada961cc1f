//! A request body that must keep up a minimum rate: over each window (the
//! client timeout), at least `min_bytes` must arrive, or the body ends in an
//! error and the connection with it. The idle timeout alone lets a client
//! hold a connection for ever by sending a byte just before each timeout
//! (a slow-body attack); this bounds what such a client costs. Legitimate
//! uploads over slow links stay far above the rate (1 KiB/s by default).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

pub struct MinRate {
    inner: Body,
    window: Duration,
    min_bytes: u64,
    /// Time spent waiting for the client in this window: while berth is
    /// busy with what arrived (or queued), the client is not to blame.
    waited: Duration,
    /// Since when the last poll has been waiting, if it is.
    waiting_since: Option<Instant>,
    seen: u64,
}

impl MinRate {
    /// `bytes_per_s` over windows of `window`; `0` makes it a plain body.
    pub fn wrap(inner: Body, window: Duration, bytes_per_s: u64) -> Body {
        if bytes_per_s == 0 || http_body::Body::is_end_stream(&inner) {
            return inner;
        }
        Body::new(MinRate {
            inner,
            window,
            min_bytes: bytes_per_s.saturating_mul(window.as_secs().max(1)),
            waited: Duration::ZERO,
            waiting_since: None,
            seen: 0,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than the minimum rate ({0} bytes in the last window)")]
pub struct TooSlow(u64);

impl http_body::Body for MinRate {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_pending() {
            this.waiting_since.get_or_insert_with(Instant::now);
            return Poll::Pending;
        }
        if let Some(since) = this.waiting_since.take() {
            this.waited += since.elapsed();
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                }
                if this.waited >= this.window {
                    if this.seen < this.min_bytes {
                        crate::metrics::METRICS.slow_bodies_dropped.add(1);
                        return Poll::Ready(Some(Err(TooSlow(this.seen).into())));
                    }
                    this.waited = Duration::ZERO;
                    this.seen = 0;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
