//! [`RequestBody`]: the request body every service behind [`serve_with`](super::serve_with)
//! reads, with a deadline so that a client which stops sending cannot hold its call (and its
//! connection slot) open.
//!
//! A body must arrive within `body_read_timeout`, extended by one second per `body_min_rate`
//! bytes received: a client sending at least that fast is never cut, one that stalls is cut
//! once the time its bytes earned is spent. Streams (native gRPC, Connect streaming:
//! their request body may stay open between messages for as long as the call lasts) have the
//! deadline on their first message only. A stalled body yields a DEADLINE_EXCEEDED error and
//! marks the request [`Stall`]ed, so that the server answers 408 / DEADLINE_EXCEEDED itself
//! whatever the application made of the error.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// How long a request body may take (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyDeadline {
    /// The time allowed without progress; zero disables the deadline.
    pub(crate) timeout: Duration,
    /// Bytes per second that extend the deadline by one second; zero: none do.
    pub(crate) min_rate: u64,
}

/// Set when a request's body stalled: the server then answers for the application.
#[derive(Debug, Default)]
pub(crate) struct Stall(AtomicBool);

impl Stall {
    pub(crate) fn happened(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Which part of a body the deadline covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Covered {
    /// The whole body (REST, Connect unary, gRPC-Web: none of them streams requests).
    Whole,
    /// The first length-prefixed message (native gRPC, Connect streaming).
    FirstMessage,
}

impl Covered {
    /// From the request's `content-type`.
    pub(crate) fn of(headers: &http::HeaderMap) -> Self {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let grpc = content_type == "application/grpc"
            || content_type.starts_with("application/grpc+")
            || content_type.starts_with("application/grpc;");
        if grpc || content_type.starts_with("application/connect+") {
            Self::FirstMessage
        } else {
            Self::Whole
        }
    }
}

/// The incoming request body with its deadline.
pub struct RequestBody {
    inner: Incoming,
    watch: Option<Box<Watch>>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("deadline", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}

/// The deadline's state, while armed.
struct Watch {
    sleep: Pin<Box<Sleep>>,
    started: Instant,
    deadline: BodyDeadline,
    received: u64,
    /// For [`Covered::FirstMessage`]: the first message's prefix bytes seen so far and its
    /// total length once known.
    first: Option<FirstMessage>,
    stall: Arc<Stall>,
}

#[derive(Default)]
struct FirstMessage {
    prefix: Vec<u8>,
    /// Prefix plus payload length, once the 5-byte prefix is in.
    total: Option<u64>,
}

impl RequestBody {
    pub(crate) fn new(
        inner: Incoming,
        deadline: BodyDeadline,
        covered: Covered,
        stall: Arc<Stall>,
    ) -> Self {
        // A body already complete (GET, an empty POST) needs no watch.
        let watch = (!deadline.timeout.is_zero() && !inner.is_end_stream()).then(|| {
            let started = Instant::now();
            Box::new(Watch {
                sleep: Box::pin(tokio::time::sleep_until(started + deadline.timeout)),
                started,
                deadline,
                received: 0,
                first: (covered == Covered::FirstMessage).then(FirstMessage::default),
                stall,
            })
        });
        Self { inner, watch }
    }
}

impl Watch {
    /// Notes `chunk`; `true` when the covered part of the body is complete.
    fn progress(&mut self, chunk: &Bytes) -> bool {
        self.received += chunk.len() as u64;
        if let Some(first) = &mut self.first {
            if first.total.is_none() {
                let mut rest = chunk.clone();
                while first.prefix.len() < 5 && rest.has_remaining() {
                    first.prefix.push(rest.get_u8());
                }
                if let [_, a, b, c, d] = first.prefix[..] {
                    first.total = Some(5 + u64::from(u32::from_be_bytes([a, b, c, d])));
                }
            }
            if first.total.is_some_and(|total| self.received >= total) {
                return true;
            }
        }
        let allowance = match self.deadline.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        let at = self.started + self.deadline.timeout + allowance;
        self.sleep.as_mut().reset(at);
        false
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(watch), Some(data)) = (&mut this.watch, frame.data_ref())
                    && watch.progress(data)
                {
                    this.watch = None;
                }
                if this.inner.is_end_stream() {
                    this.watch = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.watch = None;
                Poll::Ready(other.map(|r| r.map_err(BoxError::from)))
            }
            Poll::Pending => {
                let Some(watch) = &mut this.watch else {
                    return Poll::Pending;
                };
                if watch.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                watch.stall.0.store(true, Ordering::SeqCst);
                let received = watch.received;
                this.watch = None;
                let status = tonic::Status::deadline_exceeded(format!(
                    "request body not received in time ({received} bytes arrived)"
                ));
                Poll::Ready(Some(Err(Box::new(status))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_by_content_type() {
        let cases = [
            ("application/grpc", Covered::FirstMessage),
            ("application/grpc+proto", Covered::FirstMessage),
            ("application/connect+json", Covered::FirstMessage),
            ("application/grpc-web+proto", Covered::Whole),
            ("application/grpc-web-text", Covered::Whole),
            ("application/json", Covered::Whole),
            ("", Covered::Whole),
        ];
        for (content_type, want) in cases {
            let mut headers = http::HeaderMap::new();
            if !content_type.is_empty() {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    content_type.parse().expect("header value"),
                );
            }
            assert_eq!(Covered::of(&headers), want, "{content_type}");
        }
    }
}
