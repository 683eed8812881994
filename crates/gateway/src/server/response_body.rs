//! [`ResponseBody`]: every response [`serve_with`](super::serve_with) sends. It keeps its call
//! counted as in flight until the body ends (so a live stream is activity for the idle
//! timeout), and when the grace period after shutdown is over it ends a stream still open with
//! the protocol's own end — trailers `grpc-status: 14` (gRPC), a trailer frame (gRPC-Web), an
//! end-of-stream message (Connect) — instead of a bare close. It also renders the answer to a
//! request whose body stalled (see [`super::request_body`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};

use super::InFlightGuard;
use crate::BoxError;

/// How a response stream is ended when the server closes it (from its `content-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Native gRPC: HTTP/2 trailers.
    Grpc,
    /// gRPC-Web binary: a trailer frame (flag 0x80).
    GrpcWeb,
    /// gRPC-Web text: the trailer frame in base64.
    GrpcWebText,
    /// Connect streaming: an end-of-stream message (flag 0x02).
    Connect,
    /// Anything else: the body just ends.
    Plain,
}

impl StreamEnd {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        Self::of_content_type(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        )
    }

    fn of_content_type(content_type: &str) -> Self {
        let content_type = content_type.to_ascii_lowercase();
        if content_type.starts_with("application/grpc-web-text") {
            Self::GrpcWebText
        } else if content_type.starts_with("application/grpc-web") {
            Self::GrpcWeb
        } else if content_type.starts_with("application/grpc") {
            Self::Grpc
        } else if content_type.starts_with("application/connect+") {
            Self::Connect
        } else {
            Self::Plain
        }
    }

    /// The last frame that tells the client the call ended with `code` and `message`.
    fn final_frame(self, code: tonic::Code, message: &str) -> Option<Frame<Bytes>> {
        let trailer_text = || format!("grpc-status:{}\r\ngrpc-message:{message}\r\n", code as i32);
        match self {
            Self::Grpc => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from(code as i32));
                if let Ok(value) = HeaderValue::from_str(message) {
                    trailers.insert("grpc-message", value);
                }
                Some(Frame::trailers(trailers))
            }
            Self::GrpcWeb => Some(Frame::data(envelope(0x80, trailer_text().as_bytes()))),
            Self::GrpcWebText => {
                let frame = envelope(0x80, trailer_text().as_bytes());
                let text = base64::engine::general_purpose::STANDARD.encode(frame);
                Some(Frame::data(Bytes::from(text)))
            }
            Self::Connect => {
                let end = serde_json::json!({
                    "error": { "code": connect_code(code), "message": message }
                });
                Some(Frame::data(envelope(0x02, end.to_string().as_bytes())))
            }
            Self::Plain => None,
        }
    }
}

/// A length-prefixed message: flag, 4-byte big-endian length, payload.
fn envelope(flag: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// Connect's name of the codes the server itself raises.
fn connect_code(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        _ => "unavailable",
    }
}

/// Resolves when the server's grace period is over.
pub(crate) type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The response body: the application's, or one the server wrote itself.
pub struct ResponseBody<B> {
    state: State<B>,
    /// Counts the call as in flight until the body ends or is dropped.
    guard: Option<InFlightGuard>,
}

enum State<B> {
    /// The application's body; `closing` ends it early (streams only).
    Inner {
        body: Pin<Box<B>>,
        closing: Option<Closing>,
        end: StreamEnd,
    },
    /// The server's own answer.
    Local(Option<Bytes>),
    /// One last frame, then the end.
    Last(Option<Frame<Bytes>>),
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    /// The application's `body`; `closing` is set for streaming responses.
    pub(crate) fn inner(
        body: B,
        guard: InFlightGuard,
        closing: Option<Closing>,
        end: StreamEnd,
    ) -> Self {
        Self {
            state: State::Inner {
                body: Box::pin(body),
                closing,
                end,
            },
            guard: Some(guard),
        }
    }

    fn local(data: Bytes, guard: InFlightGuard) -> Self {
        Self {
            state: State::Local((!data.is_empty()).then_some(data)),
            guard: Some(guard),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.state {
            State::Inner { body, closing, end } => match body.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
                Poll::Pending => {
                    let closed = closing
                        .as_mut()
                        .is_some_and(|closing| closing.as_mut().poll(cx).is_ready());
                    if closed {
                        tracing::debug!("grace period over: ending an open stream");
                        let last =
                            end.final_frame(tonic::Code::Unavailable, "server shutting down");
                        this.state = State::Last(None);
                        Poll::Ready(last.map(Ok))
                    } else {
                        Poll::Pending
                    }
                }
            },
            State::Local(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            State::Last(frame) => Poll::Ready(frame.take().map(Ok)),
        };
        if matches!(polled, Poll::Ready(None)) {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Inner { body, .. } => body.is_end_stream(),
            State::Local(data) => data.is_none(),
            State::Last(frame) => frame.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Inner { body, .. } => body.size_hint(),
            State::Local(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            State::Last(_) => SizeHint::default(),
        }
    }
}

/// What the answer to a stalled body needs to know of its request.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    pub(crate) content_type: String,
    pub(crate) connect_unary: bool,
    pub(crate) http1: bool,
}

impl RequestInfo {
    pub(crate) fn of<B>(request: &http::Request<B>) -> Self {
        Self {
            content_type: request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            connect_unary: request.headers().contains_key("connect-protocol-version"),
            http1: request.version() <= http::Version::HTTP_11,
        }
    }
}

/// The server's answer to a request whose body stalled: DEADLINE_EXCEEDED in the request's
/// protocol — a trailers-only response for gRPC and gRPC-Web, an end-of-stream message for
/// Connect streaming, 408 with a JSON error for Connect unary and REST. HTTP/1.1 connections
/// are closed after it (the rest of the body will not be read).
pub(crate) fn stalled<B>(info: &RequestInfo, guard: InFlightGuard) -> Response<ResponseBody<B>> {
    const MESSAGE: &str = "request body not received in time";
    let code = tonic::Code::DeadlineExceeded;
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(&info.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/json"));
    let (status, body) = match StreamEnd::of_content_type(&info.content_type) {
        StreamEnd::Grpc | StreamEnd::GrpcWeb | StreamEnd::GrpcWebText => {
            // Trailers-only: the status in the headers, no body.
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert("grpc-status", HeaderValue::from(code as i32));
            headers.insert("grpc-message", HeaderValue::from_static(MESSAGE));
            (StatusCode::OK, Bytes::new())
        }
        StreamEnd::Connect => {
            headers.insert(header::CONTENT_TYPE, content_type);
            let frame = StreamEnd::Connect.final_frame(code, MESSAGE);
            let data = frame.and_then(|f| f.into_data().ok()).unwrap_or_default();
            (StatusCode::OK, data)
        }
        StreamEnd::Plain => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let body = if info.connect_unary {
                serde_json::json!({ "code": connect_code(code), "message": MESSAGE })
            } else {
                // google.rpc.Status, as the REST errors.
                serde_json::json!({ "code": code as i32, "message": MESSAGE, "details": [] })
            };
            (StatusCode::REQUEST_TIMEOUT, Bytes::from(body.to_string()))
        }
    };
    if info.http1 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut response = Response::new(ResponseBody::local(body, guard));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_end_by_content_type() {
        let cases = [
            ("application/grpc", StreamEnd::Grpc),
            ("application/grpc+proto", StreamEnd::Grpc),
            ("application/grpc-web+proto", StreamEnd::GrpcWeb),
            ("application/grpc-web-text+proto", StreamEnd::GrpcWebText),
            ("application/connect+json", StreamEnd::Connect),
            ("application/json", StreamEnd::Plain),
        ];
        for (content_type, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                content_type.parse().expect("header value"),
            );
            assert_eq!(StreamEnd::of(&headers), want, "{content_type}");
        }
    }

    #[test]
    fn final_frames_carry_unavailable() {
        let web = StreamEnd::GrpcWeb
            .final_frame(tonic::Code::Unavailable, "bye")
            .and_then(|f| f.into_data().ok())
            .expect("test frame");
        assert_eq!(web[0], 0x80);
        assert_eq!(&web[5..], b"grpc-status:14\r\ngrpc-message:bye\r\n");
        let connect = StreamEnd::Connect
            .final_frame(tonic::Code::Unavailable, "bye")
            .and_then(|f| f.into_data().ok())
            .expect("test frame");
        assert_eq!(connect[0], 0x02);
        let end: serde_json::Value = serde_json::from_slice(&connect[5..]).expect("test frame");
        assert_eq!(end["error"]["code"], "unavailable");
        let grpc = StreamEnd::Grpc
            .final_frame(tonic::Code::Unavailable, "bye")
            .and_then(|f| f.into_trailers().ok())
            .expect("test frame");
        assert_eq!(grpc["grpc-status"], "14");
        assert!(
            StreamEnd::Plain
                .final_frame(tonic::Code::Unavailable, "x")
                .is_none()
        );
    }
}
