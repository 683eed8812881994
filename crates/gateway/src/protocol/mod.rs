//! The protocol contract: what a protocol is, from the client's side (as vanguard-go's
//! `clientProtocolHandler` puts it), and the one pipeline every protocol's calls run through.
//!
//! A protocol module implements [`ClientProtocol`]: decode the request head into a
//! [`Call`] (method, metadata, deadline), decode the request message(s), encode the answer
//! (one message, or a stream ending in its status), encode an error. [`serve`] drives it:
//! head, then the body, then `crate::call` (in-process or upstream), then the answer, with the
//! call's [`Observer`] told the method and finished with the code — so no protocol module
//! logs, counts, times out or calls a handler by itself. Picking the protocol is
//! `crate::detect`'s job, done once per request.
//!
//! Adding a protocol means one new module implementing [`ClientProtocol`] and one arm in
//! `crate::layer`. The helpers below are what the modules share: bounded body reading, the
//! header → metadata filter, the `grpc-timeout` grammar, plain responses.

pub(crate) mod codec;
pub(crate) mod connect;
pub(crate) mod grpc;
pub(crate) mod grpc_web;
pub(crate) mod rest;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use tonic::{Code, Status};
use tower::Service;

use crate::BoxError;
use crate::call::compression::Encoding;
use crate::call::{self, Call, Item, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::ops::observer::Observer;
use crate::state::GatewayState;

/// A request the protocol refused before any call: the status for the log and the metrics,
/// and the answer already rendered in the protocol's own way (a REST 405 with `Allow`, the
/// OpenAPI document, a Connect 415).
pub(crate) struct Refused {
    pub(crate) status: Status,
    pub(crate) response: Response<tonic::body::Body>,
}

/// Where in the call an error arose: some protocols answer a refused request differently
/// from a failed call (REST: an over-limit body is 413, a handler's RESOURCE_EXHAUSTED 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reading or decoding the request.
    Request,
    /// The call itself, or rendering its answer.
    Call,
}

/// How a call's messages travel, decided once from the request head: their codec, what the
/// request's messages are compressed with, and what the answer's may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire {
    /// The codec of every message, both ways.
    pub(crate) codec: Codec,
    /// The request's compression (`grpc-encoding`, `connect-content-encoding`,
    /// `Content-Encoding`).
    pub(crate) request: Encoding,
    /// The answer's: the request's own, else what the client accepts, else identity.
    pub(crate) response: Encoding,
}

impl Wire {
    /// The wire of a request whose codec is `codec`, compressed as its `encoding` header says,
    /// accepting what its `accept` header lists.
    ///
    /// # Errors
    ///
    /// UNIMPLEMENTED for an encoding we do not read, naming what we do.
    pub(crate) fn from_headers(
        codec: Codec,
        headers: &HeaderMap,
        encoding: &str,
        accept: &str,
    ) -> Result<Self, Status> {
        let request = Encoding::from_header(headers, encoding)?;
        Ok(Self {
            codec,
            request,
            response: request.for_response(headers, accept),
        })
    }
}

/// Turns one response message (protobuf) into the bytes of the request's codec.
pub(crate) type MessageEncoder = Box<dyn FnMut(Bytes) -> Result<Bytes, Status> + Send>;

/// The encoder of a codec that is protobuf already.
pub(crate) fn proto_encoder() -> MessageEncoder {
    Box::new(Ok)
}

/// One protocol, from the client's side.
pub(crate) trait ClientProtocol: Send + Sync {
    /// What the protocol keeps from the head for the rest of the call (REST: the matched
    /// route).
    type Head: Send + Sync;

    /// Decodes the request head: which method, its metadata, its deadline.
    ///
    /// # Errors
    ///
    /// An unknown method, a malformed header, anything refused before the body is read.
    // A refusal is the rare path, returned once and answered at once: boxing it would cost
    // an allocation on it for nothing on the common one.
    #[allow(clippy::result_large_err)]
    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, Self::Head), Refused>;

    /// Reads the one request message of a unary or server-streaming call, as protobuf.
    ///
    /// # Errors
    ///
    /// A body above the limit, malformed, or not the method's input message.
    fn decode_request<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &Self::Head,
        parts: &Parts,
        body: B,
    ) -> impl Future<Output = Result<Bytes, Status>> + Send
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;

    /// The request messages of a client-streaming call, as protobuf, as they arrive.
    ///
    /// # Errors
    ///
    /// UNIMPLEMENTED where the protocol cannot stream requests.
    fn decode_stream<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &Self::Head,
        body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;

    /// Renders a unary answer.
    ///
    /// # Errors
    ///
    /// INTERNAL when the message cannot be rendered in the request's codec.
    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &Self::Head,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status>;

    /// What turns each streamed response message (protobuf) into the request's codec; it ends
    /// the stream with its error if a message cannot be rendered.
    fn message_encoder(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &Self::Head,
    ) -> MessageEncoder;

    /// Frames a streamed answer whose messages are already in the request's codec: each
    /// message as it comes, then its end. It may wait for the first item before answering
    /// (REST's `google.api.HttpBody` stream takes its content type from the first chunk).
    fn encode_stream(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &Self::Head,
        reply: StreamReply,
    ) -> impl Future<Output = Response<tonic::body::Body>> + Send;

    /// Renders an error of `stage`.
    fn encode_error(
        &self,
        state: &GatewayState,
        stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body>;
}

/// Serves one request of `protocol` end to end, recording it in `observer`.
pub(crate) async fn serve<P, S, B, ReqB>(
    protocol: &P,
    state: &GatewayState,
    inner: S,
    request: Request<ReqB>,
    mut observer: Observer,
) -> Response<tonic::body::Body>
where
    P: ClientProtocol,
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let (call, metadata, head) = match protocol.decode_head(state, &parts) {
        Ok(decoded) => decoded,
        Err(Refused { status, response }) => {
            observer.finish(status.code(), response.status());
            return response;
        }
    };
    observer.set_method(&call.path, Some(&call.metrics));
    let fail = |observer: Observer, stage, status: Status| {
        let response = protocol.encode_error(state, stage, &status);
        observer.finish(status.code(), response.status());
        response
    };
    let method = &call.method;
    if method.is_client_streaming() || method.is_server_streaming() {
        let requests = if method.is_client_streaming() {
            protocol.decode_stream(state, &call, &head, body)
        } else {
            let one = protocol
                .decode_request(state, &call, &head, &parts, body)
                .await;
            one.map(|message| Box::pin(stream::once(async { Ok(message) })) as MessageStream)
        };
        let requests = match requests {
            Ok(requests) => requests,
            Err(status) => return fail(observer, Stage::Request, status),
        };
        return match call::streaming(state, inner, &call, metadata, requests).await {
            Ok(reply) => {
                // The stream's last item gives the code; the HTTP status is the answer's (200,
                // unless the protocol waited for the first item and it was an error).
                let observer = Arc::new(Mutex::new(observer));
                let encoder = protocol.message_encoder(state, &call, &head);
                let reply = observed(converted(reply, encoder), Arc::clone(&observer));
                let response = protocol.encode_stream(state, &call, &head, reply).await;
                if let Ok(mut observer) = observer.lock() {
                    observer.set_http_status(response.status());
                }
                response
            }
            Err(status) => fail(observer, Stage::Call, status),
        };
    }
    // Credentials before the body: a caller without them gets UNAUTHENTICATED, not a parse
    // error about what it sent.
    let extensions = match call::authenticate(state, &call, &metadata).await {
        Ok(extensions) => extensions,
        Err(status) => return fail(observer, Stage::Request, status),
    };
    let message = match protocol
        .decode_request(state, &call, &head, &parts, body)
        .await
    {
        Ok(message) => message,
        Err(status) => return fail(observer, Stage::Request, status),
    };
    let answer = match call::unary(state, inner, &call, metadata, extensions, message).await {
        Ok(reply) => protocol.encode_response(state, &call, &head, reply),
        Err(status) => Err(status),
    };
    match answer {
        Ok(response) => {
            observer.finish(Code::Ok, response.status());
            response
        }
        Err(status) => fail(observer, Stage::Call, status),
    }
}

/// The reply with its messages in the request's codec; a message that cannot be rendered ends
/// the stream with its status (which the observer then records).
fn converted(reply: StreamReply, encoder: MessageEncoder) -> StreamReply {
    let items = stream::unfold(Some((reply.items, encoder)), |state| async move {
        let (mut items, mut encode) = state?;
        match items.next().await? {
            Item::Message(message) => match encode(message) {
                Ok(bytes) => Some((Item::Message(bytes), Some((items, encode)))),
                Err(status) => Some((Item::End(status, HeaderMap::new()), None)),
            },
            end @ Item::End(..) => Some((end, None)),
        }
    });
    StreamReply {
        headers: reply.headers,
        items: Box::pin(items),
    }
}

/// The reply with `observer` riding along: the last item's code finishes it, and a stream
/// dropped before its end (the client went away) records CANCELLED. The observer records when
/// the last of its holders (this stream, `serve` until it has the answer's status) lets go.
fn observed(reply: StreamReply, observer: Arc<Mutex<Observer>>) -> StreamReply {
    let items = reply.items.map(move |item| {
        if let Item::End(status, _) = &item
            && let Ok(mut observer) = observer.lock()
        {
            observer.set_code(status.code());
        }
        item
    });
    StreamReply {
        headers: reply.headers,
        items: Box::pin(items),
    }
}

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
///
/// # Errors
///
/// INVALID_ARGUMENT for anything else, naming the header.
pub(crate) fn parse_grpc_timeout(value: &HeaderValue) -> Result<Duration, Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "invalid grpc-timeout {:?}: expected 1 to 8 digits and a unit (H, M, S, m, u, n)",
            String::from_utf8_lossy(value.as_bytes())
        ))
    };
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

/// The `grpc-timeout` header of a request, if any.
///
/// # Errors
///
/// INVALID_ARGUMENT for a malformed value.
pub(crate) fn grpc_timeout_header(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    headers
        .get("grpc-timeout")
        .map(parse_grpc_timeout)
        .transpose()
}

/// Reads a whole request body, refusing more than `limit` bytes.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED when the body is larger than `limit`, INVALID_ARGUMENT when it cannot
/// be read (the client went away, a malformed chunk).
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(
            Status::resource_exhausted(format!("request body exceeds the limit of {limit} bytes")),
        ),
        Err(err) => Err(Status::invalid_argument(format!(
            "cannot read request body: {err}"
        ))),
    }
}

/// Request headers that describe the HTTP exchange rather than the call; they never become
/// gRPC metadata. Hop-by-hop headers per RFC 9110 §7.6.1, framing, and the reserved `grpc-`
/// and `connect-` families (the protocol modules translate what they need).
fn is_transport_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-type"
            | "content-length"
            | "content-encoding"
            | "accept-encoding"
            | "accept"
    ) || name.starts_with("grpc-")
        || name.starts_with("connect-")
}

/// grpc-gateway's prefix for headers meant as metadata: `Grpc-Metadata-Foo: x` is `foo: x`.
const METADATA_PREFIX: &str = "grpc-metadata-";

/// The request headers to forward as gRPC metadata, following grpc-gateway's conventions:
/// `Grpc-Metadata-*` loses its prefix; hop-by-hop and transport headers never pass. With an
/// allow-list, only `authorization`, `Grpc-Metadata-*` and names matching the list (a
/// trailing `*` matches a prefix) pass.
pub(crate) fn forwarded_metadata(headers: &HeaderMap, allow: Option<&[String]>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Some(stripped) = name.as_str().strip_prefix(METADATA_PREFIX) {
            if let Ok(stripped) = HeaderName::try_from(stripped)
                && !is_transport_header(&stripped)
            {
                out.append(stripped, value.clone());
            }
            continue;
        }
        if is_transport_header(name) {
            continue;
        }
        let allowed = match allow {
            None => true,
            Some(list) => {
                name == header::AUTHORIZATION || list.iter().any(|p| matches_pattern(p, name))
            }
        };
        if allowed {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// `x-zitadel-*` matches any name with that prefix; anything else matches exactly (names
/// are compared lower-case).
fn matches_pattern(pattern: &str, name: &HeaderName) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => name.as_str().starts_with(prefix),
        None => name.as_str() == pattern,
    }
}

/// Response metadata the client may see: everything except transport and `grpc-` headers.
pub(crate) fn visible_metadata(
    headers: HeaderMap,
) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
    let mut last: Option<HeaderName> = None;
    headers
        .into_iter()
        .filter_map(move |(name, value)| {
            // `HeaderMap::into_iter` names only the first value of a multi-valued header.
            if let Some(name) = name {
                last = Some(name);
            }
            last.clone().map(|name| (name, value))
        })
        .filter(|(name, _)| !is_transport_header(name) && name != header::DATE)
}

/// A response with a fixed body.
pub(crate) fn full_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<tonic::body::Body> {
    let mut response = Response::new(tonic::body::Body::new(Full::new(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_metadata_keeps_call_headers_only() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer t"),
            ("x-zitadel-orgid", "42"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("connect-protocol-version", "1"),
            ("connection", "keep-alive"),
            ("te", "trailers"),
            ("grpc-timeout", "1S"),
            ("host", "localhost"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let out = forwarded_metadata(&headers, None);
        let mut names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "x-multi", "x-zitadel-orgid"]);
        assert_eq!(out.get_all("x-multi").iter().count(), 2);
    }

    #[test]
    fn forwarded_metadata_grpc_gateway_conventions() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer t"),
            ("grpc-metadata-x-trace", "abc"),
            ("grpc-metadata-connection", "close"),
            ("x-zitadel-orgid", "42"),
            ("x-other", "1"),
            ("cookie", "c"),
            ("upgrade", "h2c"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let allow = ["X-Zitadel-*".to_owned(), "cookie".to_owned()];
        let cases: [(Option<&[String]>, &[&str]); 2] = [
            (
                None,
                &[
                    "authorization",
                    "cookie",
                    "x-other",
                    "x-trace",
                    "x-zitadel-orgid",
                ],
            ),
            (
                Some(&allow),
                &["authorization", "cookie", "x-trace", "x-zitadel-orgid"],
            ),
        ];
        for (allow, want) in cases {
            let out = forwarded_metadata(&headers, allow);
            let mut names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, want, "{allow:?}");
        }
    }

    #[test]
    fn visible_metadata_keeps_multi_values() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.append("grpc-status", HeaderValue::from_static("0"));
        headers.append("content-type", HeaderValue::from_static("application/grpc"));
        let got: Vec<_> = visible_metadata(headers)
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(got, ["x-a=1", "x-a=2"]);
    }

    #[tokio::test]
    async fn read_body_enforces_limit() {
        let small = read_body(Full::new(Bytes::from_static(b"abc")), 3).await;
        assert_eq!(small.ok().as_deref(), Some(&b"abc"[..]));
        let big = read_body(Full::new(Bytes::from_static(b"abcd")), 3).await;
        assert_eq!(
            big.err().map(|s| s.code()),
            Some(tonic::Code::ResourceExhausted)
        );
    }
}
