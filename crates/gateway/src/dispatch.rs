//! The unary gRPC core shared by Connect and REST: one message in, one message out.
//!
//! [`unary`] turns an already-decoded protobuf message into an in-process gRPC request
//! (`content-type: application/grpc`, `te: trailers`, a 5-byte length-prefixed frame), calls the
//! inner service, and collects its answer: response headers, exactly one message, and the
//! status from the trailers (or from the headers of a trailers-only response). How the message
//! was decoded and how the answer is rendered belongs to the protocol modules.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::Full;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use crate::BoxError;

/// Length of a gRPC message frame header: 1 flag byte and a 4-byte big-endian length.
const FRAME_HEADER_LEN: usize = 5;

/// A unary call ready to go to the inner gRPC service.
#[derive(Debug)]
pub(crate) struct UnaryCall {
    /// The gRPC path, `/pkg.Service/Method`.
    pub(crate) path: String,
    /// Headers to send as request metadata (already filtered by the protocol module).
    pub(crate) metadata: HeaderMap,
    /// The encoded request message (without a frame header).
    pub(crate) message: Bytes,
    /// The deadline the client asked for, if any.
    pub(crate) timeout: Option<Duration>,
}

/// A successful unary answer.
#[derive(Debug, Default)]
pub(crate) struct UnaryReply {
    /// Response headers (response metadata), `content-type` included.
    pub(crate) headers: HeaderMap,
    /// The encoded response message (without a frame header).
    pub(crate) message: Bytes,
    /// Trailers other than the `grpc-*` status ones.
    pub(crate) trailers: HeaderMap,
}

/// Calls `service` with one message and collects one message back.
///
/// # Errors
///
/// The status the service answered with, or INTERNAL for a malformed answer,
/// RESOURCE_EXHAUSTED for a message above `max_message_bytes`, DEADLINE_EXCEEDED when
/// `call.timeout` elapses first.
pub(crate) async fn unary<S, B>(
    service: S,
    call: UnaryCall,
    max_message_bytes: usize,
) -> Result<UnaryReply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let timeout = call.timeout;
    let work = call_and_collect(service, call, max_message_bytes);
    match timeout {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline exceeded"))),
        None => work.await,
    }
}

async fn call_and_collect<S, B>(
    service: S,
    call: UnaryCall,
    max_message_bytes: usize,
) -> Result<UnaryReply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if call.message.len() > max_message_bytes {
        return Err(too_large("request", call.message.len(), max_message_bytes));
    }
    let request = build_request(call)?;
    let response = service
        .oneshot(request)
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(status_from_http(parts.status));
    }
    // Trailers-only: the status travels in the headers and there is no body worth reading.
    if parts.headers.contains_key(GRPC_STATUS) {
        let status = status_from_headers(&parts.headers)
            .unwrap_or_else(|| Status::internal("unreadable grpc-status"));
        if status.code() == Code::Ok {
            return Err(Status::unimplemented(
                "unary call answered without a response message",
            ));
        }
        return Err(status);
    }
    let (frames, trailers) = collect_body(body, max_message_bytes).await?;
    let mut status = status_from_headers(&trailers)
        .unwrap_or_else(|| Status::internal("response ended without grpc-status"));
    if status.code() != Code::Ok {
        // Response headers are metadata too; the protocol module decides what to show.
        let mut headers = parts.headers;
        headers.remove(header::CONTENT_TYPE);
        headers.extend(status.metadata().clone().into_headers());
        *status.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        return Err(status);
    }
    let message = parse_single_frame(frames, max_message_bytes)?;
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_TYPE);
    Ok(UnaryReply {
        headers,
        message,
        trailers: strip_status(trailers),
    })
}

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

fn build_request(call: UnaryCall) -> Result<Request<tonic::body::Body>, Status> {
    let frame = encode_frame(&call.message)?;
    let mut request = Request::new(tonic::body::Body::new(Full::new(frame)));
    *request.method_mut() = Method::POST;
    *request.version_mut() = Version::HTTP_2;
    // The path's own buffer becomes the URI's: no copy.
    let path = Bytes::from(call.path.into_bytes());
    *request.uri_mut() = http::Uri::from_maybe_shared(path.clone()).map_err(|_| {
        let path = String::from_utf8_lossy(&path);
        Status::invalid_argument(format!("invalid method path {path:?}"))
    })?;
    let headers = request.headers_mut();
    *headers = call.metadata;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = call.timeout {
        headers.insert("grpc-timeout", grpc_timeout(timeout));
    }
    Ok(request)
}

/// `grpc-timeout` in milliseconds; the spec allows at most 8 digits per unit.
pub(crate) fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let millis = timeout.as_millis().min(99_999_999);
    HeaderValue::from(u64::try_from(millis).unwrap_or(99_999_999))
        .to_str()
        .ok()
        .and_then(|digits| HeaderValue::from_str(&format!("{digits}m")).ok())
        .unwrap_or_else(|| HeaderValue::from_static("99999999m"))
}

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
///
/// # Errors
///
/// INVALID_ARGUMENT for anything else.
pub(crate) fn parse_grpc_timeout(value: &HeaderValue) -> Result<Duration, Status> {
    let bad = || Status::invalid_argument(format!("invalid grpc-timeout {value:?}"));
    let text = value.to_str().map_err(|_| bad())?;
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = (text.get(..split).ok_or_else(bad)?, text.get(split..));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        Some("H") => Duration::from_secs(n * 3600),
        Some("M") => Duration::from_secs(n * 60),
        Some("S") => Duration::from_secs(n),
        Some("m") => Duration::from_millis(n),
        Some("u") => Duration::from_micros(n),
        Some("n") => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Wraps a message in an uncompressed gRPC frame.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED when the message does not fit the 32-bit length prefix.
pub(crate) fn encode_frame(message: &[u8]) -> Result<Bytes, Status> {
    let len = u32::try_from(message.len())
        .map_err(|_| Status::resource_exhausted("message larger than 4 GiB"))?;
    let mut frame = BytesMut::with_capacity(FRAME_HEADER_LEN + message.len());
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    Ok(frame.freeze())
}

/// Reads the response body: all data (bounded) and the trailers.
async fn collect_body<B>(body: B, max_message_bytes: usize) -> Result<(Bytes, HeaderMap), Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limit = max_message_bytes.saturating_add(FRAME_HEADER_LEN);
    // A unary answer is almost always one chunk: keep it as it is, copy only from a second.
    let mut first: Option<Bytes> = None;
    let mut data = BytesMut::new();
    let mut trailers = HeaderMap::new();
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| Status::from_error(e.into()))?;
        match frame.into_data() {
            Ok(chunk) => {
                let held = data.len() + first.as_ref().map_or(0, Bytes::len);
                if held.saturating_add(chunk.len()) > limit {
                    return Err(too_large(
                        "response",
                        held.saturating_add(chunk.len()),
                        max_message_bytes,
                    ));
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
    match first {
        Some(first) => Ok((first, trailers)),
        None => Ok((data.freeze(), trailers)),
    }
}

/// Parses exactly one uncompressed message frame.
///
/// # Errors
///
/// INTERNAL for a missing, truncated, compressed or repeated frame; RESOURCE_EXHAUSTED for a
/// message above `max_message_bytes`.
pub(crate) fn parse_single_frame(
    mut data: Bytes,
    max_message_bytes: usize,
) -> Result<Bytes, Status> {
    if data.is_empty() {
        return Err(Status::internal("response carried no message"));
    }
    if data.len() < FRAME_HEADER_LEN {
        return Err(Status::internal("truncated gRPC frame header"));
    }
    let flag = data.get_u8();
    let len = usize::try_from(data.get_u32()).unwrap_or(usize::MAX);
    if flag & 1 != 0 {
        // We never send grpc-accept-encoding, so a compressed frame is a protocol error.
        return Err(Status::internal("unexpected compressed gRPC frame"));
    }
    if flag != 0 {
        return Err(Status::internal(format!(
            "unknown gRPC frame flag {flag:#04x}"
        )));
    }
    if len > max_message_bytes {
        return Err(too_large("response", len, max_message_bytes));
    }
    if data.len() < len {
        return Err(Status::internal("truncated gRPC frame"));
    }
    if data.len() > len {
        return Err(Status::internal(
            "more than one message in a unary response",
        ));
    }
    Ok(data)
}

fn too_large(what: &str, got: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "{what} message of {got} bytes exceeds the limit of {max} bytes"
    ))
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

/// A non-200 answer from a gRPC server; the code comes from the one HTTP → gRPC table.
fn status_from_http(status: StatusCode) -> Status {
    let code = switchyard_transcode::status::code_from_http_status(status);
    Status::new(code, format!("upstream answered HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        input: &'static [u8],
        want: Result<&'static [u8], Code>,
    }

    #[test]
    fn parse_single_frame_table() {
        let cases = [
            Case {
                name: "one message",
                input: b"\x00\x00\x00\x00\x03abc",
                want: Ok(b"abc"),
            },
            Case {
                name: "empty message",
                input: b"\x00\x00\x00\x00\x00",
                want: Ok(b""),
            },
            Case {
                name: "no frame",
                input: b"",
                want: Err(Code::Internal),
            },
            Case {
                name: "short header",
                input: b"\x00\x00\x00",
                want: Err(Code::Internal),
            },
            Case {
                name: "truncated message",
                input: b"\x00\x00\x00\x00\x05ab",
                want: Err(Code::Internal),
            },
            Case {
                name: "two messages",
                input: b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x01b",
                want: Err(Code::Internal),
            },
            Case {
                name: "compressed",
                input: b"\x01\x00\x00\x00\x01a",
                want: Err(Code::Internal),
            },
            Case {
                name: "trailer flag",
                input: b"\x80\x00\x00\x00\x01a",
                want: Err(Code::Internal),
            },
            Case {
                name: "over the limit",
                input: b"\x00\x00\x00\x00\x20",
                want: Err(Code::ResourceExhausted),
            },
            Case {
                name: "huge length",
                input: b"\x00\xff\xff\xff\xff",
                want: Err(Code::ResourceExhausted),
            },
        ];
        for c in cases {
            let got = parse_single_frame(Bytes::from_static(c.input), 16);
            match (got, c.want) {
                (Ok(msg), Ok(want)) => assert_eq!(&msg[..], want, "{}", c.name),
                (Err(status), Err(code)) => assert_eq!(status.code(), code, "{}", c.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn encode_frame_prefixes_length() {
        let frame = encode_frame(b"hi").ok();
        assert_eq!(frame.as_deref(), Some(&b"\x00\x00\x00\x00\x02hi"[..]));
    }

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
    fn parse_grpc_timeout_table() {
        let cases = [
            ("1S", Some(Duration::from_secs(1))),
            ("250m", Some(Duration::from_millis(250))),
            ("2H", Some(Duration::from_secs(7200))),
            ("3M", Some(Duration::from_secs(180))),
            ("5u", Some(Duration::from_micros(5))),
            ("7n", Some(Duration::from_nanos(7))),
            ("123456789S", None),
            ("S", None),
            ("", None),
            ("1s", None),
            ("-1S", None),
        ];
        for (input, want) in cases {
            let got = parse_grpc_timeout(&HeaderValue::from_static(input)).ok();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn grpc_timeout_is_milliseconds() {
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::from_secs(10_000_000)), "99999999m");
    }

    #[tokio::test]
    async fn unary_reads_message_and_trailers() {
        use futures_util::stream;
        use http_body::Frame;
        use http_body_util::StreamBody;
        let svc = tower::service_fn(|_req: Request<tonic::body::Body>| async {
            let mut trailers = HeaderMap::new();
            trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            trailers.insert("x-t", HeaderValue::from_static("1"));
            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(b"\x00\x00\x00"))),
                Ok(Frame::data(Bytes::from_static(b"\x00\x02ok"))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut response = Response::new(StreamBody::new(stream::iter(frames)));
            response
                .headers_mut()
                .insert("x-h", HeaderValue::from_static("2"));
            Ok::<_, std::convert::Infallible>(response)
        });
        let call = UnaryCall {
            path: "/a.B/C".into(),
            metadata: HeaderMap::new(),
            message: Bytes::from_static(b"in"),
            timeout: Some(Duration::from_secs(5)),
        };
        let reply = unary(svc, call, 1024).await;
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
