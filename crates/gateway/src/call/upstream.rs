//! A call through a gRPC [`tower::Service`] over the wire shape of gRPC: the remote upstream of
//! `switchyard gateway` (real HTTP/2), and the streaming methods of serve's tonic services.
//!
//! [`unary`] frames one message into a `POST` with `content-type: application/grpc`, `te:
//! trailers` and the deadline as `grpc-timeout` (so the upstream knows it too), and collects
//! response headers, exactly one message and the status from the trailers (or from the headers
//! of a trailers-only answer). [`streaming`] does the same with a stream of messages each way.
//! Requests go uncompressed; an answer's compressed frames (its `grpc-encoding`) are inflated
//! within the message limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt as _, stream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use tokio::time::Instant;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use super::compression::{self, Encoding};
use super::frame::{self, Envelope, FLAG_COMPRESSED, FRAME_HEADER_LEN, Side, too_large};
use super::{Call, Item, MessageStream, Reply, StreamReply, deadline_exceeded};
use crate::BoxError;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// Calls `service` with one message and collects one message back.
///
/// # Errors
///
/// The status the service answered with, or INTERNAL for a malformed answer,
/// RESOURCE_EXHAUSTED for a response message above `limit`.
pub(crate) async fn unary<S, B>(
    service: S,
    path: &str,
    timeout: Option<Duration>,
    metadata: HeaderMap,
    message: Bytes,
    limit: usize,
) -> Result<Reply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let body = tonic::body::Body::new(Full::new(frame::encode_frame(0, &message)?));
    let request = build_request(path, timeout, metadata, body)?;
    let response = service
        .oneshot(request)
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    let headers = check_head(parts.status, parts.headers)?;
    let Some(mut headers) = headers else {
        return Err(Status::unimplemented(
            "unary call answered without a response message",
        ));
    };
    let encoding = response_encoding(&headers)?;
    let (frames, trailers) = collect_body(body, limit).await?;
    let mut status = status_from_headers(&trailers)
        .unwrap_or_else(|| Status::internal("response ended without grpc-status"));
    if status.code() != Code::Ok {
        // Response headers are metadata too; the protocol module decides what to show.
        headers.extend(status.metadata().clone().into_headers());
        *status.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        return Err(status);
    }
    Ok(Reply {
        headers,
        message: frame::parse_single_frame(frames, limit, Side::Response, encoding)?,
        trailers: strip_status(trailers),
    })
}

/// Calls `service` with a stream of messages; the answer's messages are handed on as they
/// arrive. A request message that fails (a client's malformed frame, say) ends the call with
/// its status.
///
/// # Errors
///
/// The status of an answer that failed before its body: a non-200, a trailers-only error, the
/// deadline.
pub(crate) async fn streaming<S, B>(
    service: S,
    call: &Call,
    metadata: HeaderMap,
    requests: MessageStream,
    limit: usize,
) -> Result<StreamReply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let deadline = call.timeout.map(|t| Instant::now() + t);
    // The first failure of the request stream is the call's status, whatever the handler
    // makes of the broken body.
    let request_error: Arc<Mutex<Option<Status>>> = Arc::default();
    let failed = Arc::clone(&request_error);
    let frames = requests.map(move |message| {
        match message.and_then(|m| {
            if m.len() > limit {
                Err(too_large(Side::Request, m.len(), limit))
            } else {
                frame::encode_frame(0, &m)
            }
        }) {
            Ok(frame) => Ok(Frame::data(frame)),
            Err(status) => {
                let message = status.message().to_owned();
                if let Ok(mut slot) = failed.lock() {
                    slot.get_or_insert(status);
                }
                Err(BoxError::from(message))
            }
        }
    });
    let request = build_request(
        &call.path,
        call.timeout,
        metadata,
        tonic::body::Body::new(StreamBody::new(frames)),
    )?;
    let pending = service.oneshot(request);
    let response = match deadline {
        Some(at) => tokio::time::timeout_at(at, pending)
            .await
            .map_err(|_| deadline_exceeded())?,
        None => pending.await,
    }
    .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    let Some(headers) = check_head(parts.status, parts.headers)? else {
        let end = stream::iter([Item::End(Status::new(Code::Ok, ""), HeaderMap::new())]);
        return Ok(StreamReply {
            headers: HeaderMap::new(),
            items: Box::pin(end),
        });
    };
    let encoding = response_encoding(&headers)?;
    let envelopes = frame::envelopes(body, limit, Side::Response, deadline);
    let items = stream::unfold(Some(envelopes), move |state| {
        let request_error = Arc::clone(&request_error);
        async move {
            let mut envelopes = state?;
            let (status, trailers) = match envelopes.next().await {
                Some(Ok(Envelope::Message { flag, data })) if flag & !FLAG_COMPRESSED == 0 => {
                    match compression::decode_payload(flag, data, encoding, limit, Side::Response) {
                        Ok(data) => return Some((Item::Message(data), Some(envelopes))),
                        Err(status) => (status, HeaderMap::new()),
                    }
                }
                Some(Ok(Envelope::Message { flag, .. })) => (
                    Status::internal(format!("unexpected gRPC frame flag {flag:#04x}")),
                    HeaderMap::new(),
                ),
                Some(Ok(Envelope::Trailers(trailers))) => (
                    status_from_headers(&trailers)
                        .unwrap_or_else(|| Status::internal("stream ended without grpc-status")),
                    strip_status(trailers),
                ),
                Some(Err(status)) => (status, HeaderMap::new()),
                None => (
                    Status::internal("stream ended without grpc-status"),
                    HeaderMap::new(),
                ),
            };
            let broken = request_error.lock().ok().and_then(|mut slot| slot.take());
            Some((Item::End(broken.unwrap_or(status), trailers), None))
        }
    });
    Ok(StreamReply {
        headers,
        items: Box::pin(items),
    })
}

/// The gRPC request to the method at `path` with `body`.
fn build_request(
    path: &str,
    timeout: Option<Duration>,
    metadata: HeaderMap,
    body: tonic::body::Body,
) -> Result<Request<tonic::body::Body>, Status> {
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.version_mut() = Version::HTTP_2;
    *request.uri_mut() = http::Uri::try_from(path)
        .map_err(|_| Status::invalid_argument(format!("invalid method path {path:?}")))?;
    let headers = request.headers_mut();
    *headers = metadata;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = timeout {
        headers.insert("grpc-timeout", grpc_timeout(timeout));
    }
    Ok(request)
}

/// Checks the head of a gRPC answer: `Some(metadata)` when a body follows, `None` for a
/// trailers-only OK.
///
/// # Errors
///
/// The status of a non-200 (from the one HTTP → gRPC table) or of a trailers-only error.
fn check_head(status: StatusCode, mut headers: HeaderMap) -> Result<Option<HeaderMap>, Status> {
    if status != StatusCode::OK {
        let code = switchyard_transcode::status::code_from_http_status(status);
        return Err(Status::new(
            code,
            format!("upstream answered HTTP {status}"),
        ));
    }
    headers.remove(header::CONTENT_TYPE);
    if headers.contains_key(GRPC_STATUS) {
        let status = status_from_headers(&headers)
            .unwrap_or_else(|| Status::internal("unreadable grpc-status"));
        if status.code() != Code::Ok {
            return Err(status);
        }
        return Ok(None);
    }
    Ok(Some(headers))
}

/// The `grpc-encoding` of an answer's messages.
///
/// # Errors
///
/// INTERNAL for one we cannot read (we never asked for it).
fn response_encoding(headers: &HeaderMap) -> Result<Encoding, Status> {
    Encoding::from_header(headers, "grpc-encoding")
        .map_err(|status| Status::internal(format!("upstream answer: {}", status.message())))
}

/// `grpc-timeout` in milliseconds; the spec allows at most 8 digits per unit.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let millis = u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .min(99_999_999);
    HeaderValue::from_str(&format!("{millis}m"))
        .unwrap_or_else(|_| HeaderValue::from_static("99999999m"))
}

/// Reads the response body: all data (bounded) and the trailers.
async fn collect_body<B>(body: B, limit: usize) -> Result<(Bytes, HeaderMap), Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let most = limit.saturating_add(FRAME_HEADER_LEN);
    // A unary answer is almost always one chunk: keep it as it is, copy only from a second.
    let mut first: Option<Bytes> = None;
    let mut data = BytesMut::new();
    let mut trailers = HeaderMap::new();
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| frame::response_body_error(e.into()))?;
        match frame.into_data() {
            Ok(chunk) => {
                let held = data.len() + first.as_ref().map_or(0, Bytes::len) + chunk.len();
                if held > most {
                    return Err(too_large(Side::Response, held, limit));
                }
                if data.is_empty() && first.is_none() {
                    first = Some(chunk);
                } else {
                    if let Some(first) = first.take() {
                        data.extend_from_slice(&first);
                    }
                    data.extend_from_slice(&chunk);
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers.extend(t);
                }
            }
        }
    }
    Ok((first.unwrap_or_else(|| data.freeze()), trailers))
}

/// Builds a [`Status`] from `grpc-status`, `grpc-message` and `grpc-status-details-bin`.
///
/// Unlike a bare `Status::from_header_map`, this never panics on a malformed details header
/// (it is dropped) and reads an unparsable code as UNKNOWN.
pub(crate) fn status_from_headers(headers: &HeaderMap) -> Option<Status> {
    headers.get(GRPC_STATUS)?;
    let details_ok = headers.get(GRPC_STATUS_DETAILS).is_none_or(|v| {
        use base64::Engine as _;
        BASE64_INDIFFERENT.decode(v.as_bytes()).is_ok()
    });
    if details_ok {
        Status::from_header_map(headers)
    } else {
        let mut headers = headers.clone();
        headers.remove(GRPC_STATUS_DETAILS);
        Status::from_header_map(&headers)
    }
}

/// Standard alphabet, padding optional: what gRPC implementations send in `-bin` headers.
const BASE64_INDIFFERENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn strip_status(mut trailers: HeaderMap) -> HeaderMap {
    trailers.remove(GRPC_STATUS);
    trailers.remove(GRPC_MESSAGE);
    trailers.remove(GRPC_STATUS_DETAILS);
    trailers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn status_from_headers_survives_bad_details() {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from_static("9"));
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static("not%20now"));
        headers.insert(
            GRPC_STATUS_DETAILS,
            HeaderValue::from_static("!!not base64!!"),
        );
        let status = status_from_headers(&headers);
        assert_eq!(
            status.as_ref().map(Status::code),
            Some(Code::FailedPrecondition)
        );
        assert_eq!(status.as_ref().map(Status::message), Some("not now"));
        assert_eq!(status.map(|s| s.details().len()), Some(0));
    }

    #[test]
    fn grpc_timeout_is_milliseconds() {
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::from_secs(10_000_000)), "99999999m");
    }

    #[tokio::test]
    async fn unary_reads_message_and_trailers() {
        let svc = tower::service_fn(|req: Request<tonic::body::Body>| async move {
            assert_eq!(
                req.headers().get("grpc-timeout").map(|v| v.as_bytes()),
                Some(&b"5000m"[..])
            );
            let mut trailers = HeaderMap::new();
            trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            trailers.insert("x-t", HeaderValue::from_static("1"));
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(b"\x00\x00\x00"))),
                Ok(Frame::data(Bytes::from_static(b"\x00\x02ok"))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut response = Response::new(StreamBody::new(stream::iter(frames)));
            response
                .headers_mut()
                .insert("x-h", HeaderValue::from_static("2"));
            Ok::<_, Infallible>(response)
        });
        let timeout = Some(Duration::from_secs(5));
        let path = "/example.v1.EchoService/Echo";
        let reply = unary(
            svc,
            path,
            timeout,
            HeaderMap::new(),
            Bytes::from_static(b"in"),
            1024,
        )
        .await;
        let reply = reply.unwrap_or_else(|s| panic!("unexpected {s:?}"));
        assert_eq!(&reply.message[..], b"ok");
        assert_eq!(
            reply.headers.get("x-h").map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        assert_eq!(
            reply.trailers.get("x-t").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert!(!reply.trailers.contains_key(GRPC_STATUS));
    }
}
