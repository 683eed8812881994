//! The REST protocol: JSON over HTTP, transcoded from `google.api.http` annotations into one
//! gRPC call — the route lookup (404, 400 for a malformed path, 405 with `Allow`), the body
//! limit (413), `Grpc-Timeout`, grpc-gateway's header conventions, and `GET /openapi.json`.
//! Server-streaming methods answer NDJSON or Server-Sent Events, or the raw chunks of a
//! `google.api.HttpBody` stream ([`stream`]). A request body may come gzipped
//! (`Content-Encoding`, inflated within the body limit); a unary answer of at least 1 KiB is
//! gzipped for a client whose `Accept-Encoding` lists gzip (streams are not: each message must
//! reach the client as it is written).
//!
//! Routing, binding, JSON and the code → HTTP status table all live in
//! `switchyard-transcode`; this module adapts them to `http` types and to the protocol
//! contract of `crate::protocol`.

pub(crate) mod stream;

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind};
#[cfg(test)]
use switchyard_transcode::RouteTable;
use switchyard_transcode::bind::is_http_body;
use switchyard_transcode::status::http_status;
use switchyard_transcode::{JsonOptions, Route, RouteError, RouteMatch, rest_error_body};
use tonic::{Code, Status};

use crate::BoxError;
use crate::call::compression::{self, ACCEPTED, COMPRESS_MIN_BYTES, Encoding};
use crate::call::frame::Side;
use crate::call::{Call, MessageStream, Reply, StreamReply};
use crate::protocol::{
    ClientProtocol, MessageEncoder, Refused, Stage, forwarded_metadata, full_response,
    grpc_timeout_header, read_body,
};
use crate::state::GatewayState;
use stream::Framing;

/// REST.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rest;

/// What REST keeps from the head: the matched route, for streams the framing asked for, and
/// the body's compression each way.
pub(crate) struct RestHead {
    found: RouteMatch,
    framing: Framing,
    /// The request body's `Content-Encoding`.
    request: Encoding,
    /// Gzip when the client's `Accept-Encoding` lists it.
    response: Encoding,
}

/// The client's content codings: what its body is in, what it accepts back.
///
/// # Errors
///
/// HTTP 415 with `Accept-Encoding` naming what we read (RFC 9110 §15.5.16, RFC 7694) for a
/// `Content-Encoding` we do not.
// `Refused` is what every `decode_head` returns; boxing it here alone would buy nothing.
#[allow(clippy::result_large_err)]
fn encodings(parts: &Parts, pool: &DescriptorPool) -> Result<(Encoding, Encoding), Refused> {
    let request = Encoding::from_header(&parts.headers, http::header::CONTENT_ENCODING.as_str())
        .map_err(|status| {
            let mut response = encode_error(&status, pool);
            *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            response.headers_mut().insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static(ACCEPTED),
            );
            Refused { status, response }
        })?;
    let response =
        Encoding::Identity.for_response(&parts.headers, http::header::ACCEPT_ENCODING.as_str());
    Ok((request, response))
}

/// `response` with its body gzipped when `encoding` is gzip and the body is worth it, and
/// `Vary: accept-encoding` either way (a cache must not hand the gzip to a client that did
/// not ask for it).
fn compressed(
    mut response: Response<tonic::body::Body>,
    body: &Bytes,
    encoding: Encoding,
) -> Result<Response<tonic::body::Body>, Status> {
    response.headers_mut().append(
        http::header::VARY,
        http::HeaderValue::from_static("accept-encoding"),
    );
    if encoding == Encoding::Gzip && body.len() >= COMPRESS_MIN_BYTES {
        let packed = compression::gzip(body)?;
        *response.body_mut() = tonic::body::Body::new(http_body_util::Full::new(packed));
        response.headers_mut().insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static(Encoding::Gzip.name()),
        );
    }
    Ok(response)
}

impl RestHead {
    /// The stream's messages are `google.api.HttpBody` (the whole message or its
    /// `response_body`): their bytes are the answer, raw.
    fn streams_http_body(&self) -> bool {
        let route = self.found.route();
        match route.response_body() {
            None => is_http_body(&route.method().output()),
            Some(field) => {
                !field.is_list() && matches!(field.kind(), Kind::Message(m) if is_http_body(&m))
            }
        }
    }
}

impl ClientProtocol for Rest {
    type Head = RestHead;

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, RestHead), Refused> {
        let path = parts.uri.path();
        if let Some(doc) = &state.openapi
            && parts.method == http::Method::GET
            && path == "/openapi.json"
        {
            let (_, encoding) = encodings(parts, &state.pool)?;
            let response = full_response(StatusCode::OK, "application/json", doc.clone());
            let (status, response) = match compressed(response, doc, encoding) {
                Ok(response) => (Status::ok(""), response),
                Err(status) => (status.clone(), encode_error(&status, &state.pool)),
            };
            return Err(Refused { status, response });
        }
        // The one route lookup of the request, before the body: a 404 or 405 need not wait.
        let found = state
            .routes
            .find(&parts.method, path)
            .map_err(|err| Refused {
                status: route_status(&err, &parts.method, path),
                response: route_error(&err, &parts.method, path, &state.pool),
            })?;
        let refuse = |status: Status| Refused {
            response: self.encode_error(state, Stage::Request, &status),
            status,
        };
        let route = found.route();
        let method = route.method();
        if method.is_client_streaming() {
            return Err(refuse(Status::unimplemented(format!(
                "{} is a client-streaming method; REST cannot call it (use gRPC, gRPC-Web or Connect streaming)",
                method.full_name()
            ))));
        }
        let entry = state.methods.get(route.grpc_path()).ok_or_else(|| {
            refuse(Status::internal(format!(
                "route to an unknown method {}",
                route.grpc_path()
            )))
        })?;
        // `Grpc-Timeout` (grpc-gateway's REST header) or the service's default.
        let asked = grpc_timeout_header(&parts.headers).map_err(refuse)?;
        let (request, response) = encodings(parts, &state.pool)?;
        let call = state.call(entry, asked);
        let metadata = forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        let head = RestHead {
            found,
            framing: Framing::from_accept(&parts.headers),
            request,
            response,
        };
        Ok((call, metadata, head))
    }

    async fn decode_request<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &RestHead,
        parts: &Parts,
        body: B,
    ) -> Result<Bytes, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = state.opts.max_message_bytes;
        let body = read_body(body, limit).await?;
        let body = compression::inflate(head.request, body, limit, Side::Request)?;
        let json = crate::protocol::connect::json_for(state, call);
        decode_matched(&head.found, json, parts, body)
    }

    fn decode_stream<B>(
        &self,
        _state: &GatewayState,
        call: &Call,
        _head: &RestHead,
        _body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // `decode_head` refuses client streaming already.
        Err(Status::unimplemented(format!(
            "{} is a client-streaming method; REST cannot call it",
            call.method.full_name()
        )))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &RestHead,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let json = crate::protocol::connect::json_for(state, call);
        let mut response = encode_response(head.found.route(), json, reply.message, head.response)?;
        metadata_headers(response.headers_mut(), reply.headers, "grpc-metadata-");
        metadata_headers(response.headers_mut(), reply.trailers, "grpc-trailer-");
        Ok(response)
    }

    fn message_encoder(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &RestHead,
    ) -> MessageEncoder {
        let route = Arc::clone(head.found.route());
        let json = crate::protocol::connect::json_for(state, call).clone();
        if head.streams_http_body() {
            return stream::http_body_encoder(route, json);
        }
        Box::new(move |message| {
            let decoded = DynamicMessage::decode(route.method().output(), message)
                .map_err(|e| Status::internal(format!("bad response message: {e}")))?;
            switchyard_transcode::encode_response(&route, &decoded, &json)
                .map(Bytes::from)
                .map_err(Status::from)
        })
    }

    async fn encode_stream(
        &self,
        state: &GatewayState,
        _call: &Call,
        head: &RestHead,
        reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        if head.streams_http_body() {
            return stream::encode_http_body(reply, &state.pool).await;
        }
        stream::encode_stream(head.framing, reply, state.pool.clone())
    }

    fn encode_error(
        &self,
        state: &GatewayState,
        stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        let mut response = encode_error(status, &state.pool);
        if stage == Stage::Request && status.code() == Code::ResourceExhausted {
            // Our own body limit: the request is too large, not a quota the handler ran out of.
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        }
        metadata_headers(
            response.headers_mut(),
            status.metadata().clone().into_headers(),
            "grpc-metadata-",
        );
        response
    }
}

/// A REST request decoded into its gRPC call (what the unit tests look at).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct RestCall {
    /// `/pkg.Service/Method`.
    pub(crate) grpc_path: String,
    /// The protobuf-encoded request message.
    pub(crate) message: Bytes,
    /// The matched route: the output type and `response_body` for the answer.
    route: Arc<Route>,
}

#[cfg(test)]
impl RestCall {
    /// The matched route.
    pub(crate) fn route(&self) -> &Arc<Route> {
        &self.route
    }
}

/// Finds the route for the request and builds the request message from the
/// path variables, the query string and the JSON body.
///
/// # Errors
///
/// NOT_FOUND when no template matches the path; UNIMPLEMENTED when templates
/// match but not for this HTTP method (as grpc-gateway does); INVALID_ARGUMENT
/// for a malformed body, a value that does not fit its field, or an unknown
/// query parameter.
// The gateway looks the route up itself before reading the body, then calls
// `decode_matched`; this one-step form is what the unit tests drive.
#[cfg(test)]
pub(crate) fn decode_request(
    table: &RouteTable,
    opts: &JsonOptions,
    parts: &Parts,
    body: Bytes,
) -> Result<RestCall, Status> {
    let found = table
        .find(&parts.method, parts.uri.path())
        .map_err(|err| route_status(&err, &parts.method, parts.uri.path()))?;
    let route = Arc::clone(found.route());
    Ok(RestCall {
        grpc_path: route.grpc_path().to_owned(),
        message: decode_matched(&found, opts, parts, body)?,
        route,
    })
}

/// The status of a failed route lookup: NOT_FOUND, INVALID_ARGUMENT for a malformed path, or
/// UNIMPLEMENTED for a method the path's templates do not take (as grpc-gateway does).
pub(crate) fn route_status(err: &RouteError, method: &http::Method, path: &str) -> Status {
    match err {
        RouteError::NotFound => Status::not_found(format!("no route for {method} {path}")),
        RouteError::BadPath => {
            Status::invalid_argument(format!("malformed percent-encoding in the path {path}"))
        }
        RouteError::MethodNotAllowed { allowed } => {
            let allowed: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
            Status::unimplemented(format!(
                "method {method} not allowed for {path}; allowed: {}",
                allowed.join(", ")
            ))
        }
    }
}

/// The REST answer to a failed route lookup: the JSON error of [`route_status`], and for a
/// method the templates do not take, 405 with an `Allow` header listing the ones they do.
pub(crate) fn route_error(
    err: &RouteError,
    method: &http::Method,
    path: &str,
    pool: &DescriptorPool,
) -> Response<tonic::body::Body> {
    let mut response = encode_error(&route_status(err, method, path), pool);
    if let RouteError::MethodNotAllowed { allowed } = err {
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        let allow = allowed
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(allow) = http::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(http::header::ALLOW, allow);
        }
    }
    response
}

/// As [`decode_request`], for a route already looked up (the gateway finds it before reading
/// the body, and does not look it up again).
///
/// # Errors
///
/// INVALID_ARGUMENT as [`decode_request`].
pub(crate) fn decode_matched(
    found: &RouteMatch,
    opts: &JsonOptions,
    parts: &Parts,
    body: Bytes,
) -> Result<Bytes, Status> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let message = switchyard_transcode::decode_http_request(
        found,
        parts.uri.query(),
        content_type,
        &body,
        opts,
    )?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Renders the gRPC response message as JSON (the whole message, or the
/// route's `response_body` field) with HTTP 200, gzipped when `encoding` is gzip and the body
/// is worth it.
///
/// # Errors
///
/// INTERNAL when the bytes do not decode as the method's output type or a
/// value cannot be rendered as JSON.
pub(crate) fn encode_response(
    route: &Route,
    opts: &JsonOptions,
    message: Bytes,
    encoding: Encoding,
) -> Result<Response<tonic::body::Body>, Status> {
    let output = route.method().output();
    let decoded = DynamicMessage::decode(output, message)
        .map_err(|e| Status::internal(format!("cannot decode the response message: {e}")))?;
    let (content_type, body) = switchyard_transcode::encode_http_response(route, &decoded, opts)?;
    let body = Bytes::from(body);
    let mut response = full_response(StatusCode::OK, "application/json", body.clone());
    if let Ok(value) = http::HeaderValue::from_str(&content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    compressed(response, &body, encoding)
}

/// Adds response metadata to `out` under grpc-gateway's names: `prefix` is
/// `grpc-metadata-` for headers and `grpc-trailer-` for trailers. Transport and `grpc-*`
/// headers are left out.
pub(crate) fn metadata_headers(out: &mut http::HeaderMap, metadata: http::HeaderMap, prefix: &str) {
    for (name, value) in crate::protocol::visible_metadata(metadata) {
        if let Ok(prefixed) = http::HeaderName::try_from(format!("{prefix}{name}")) {
            out.append(prefixed, value);
        }
    }
}

/// Renders `status` as the REST error: the HTTP status from
/// `switchyard_transcode::status` and the body
/// `{"code": <int>, "message": "...", "details": [{"@type": ...}]}`, details
/// rendered through `pool`.
pub(crate) fn encode_error(status: &Status, pool: &DescriptorPool) -> Response<tonic::body::Body> {
    full_response(
        http_status(status.code()),
        "application/json",
        rest_error_body(status, pool),
    )
}

#[cfg(test)]
mod tests {
    use http::{Method, Request};
    use http_body_util::BodyExt as _;
    use prost_reflect::Value;
    use switchyard_transcode::RouteTableBuilder;
    use tonic::Code;

    use super::*;
    use crate::testutil;

    fn table() -> RouteTable {
        match RouteTableBuilder::new(testutil::pool()).build() {
            Ok(table) => table,
            Err(e) => panic!("routes: {e}"),
        }
    }

    fn parts(method: Method, uri: &str) -> Parts {
        match Request::builder().method(method).uri(uri).body(()) {
            Ok(req) => req.into_parts().0,
            Err(e) => panic!("{uri}: {e}"),
        }
    }

    async fn body_text(response: Response<tonic::body::Body>) -> String {
        match response.into_body().collect().await {
            Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
            Err(e) => panic!("body: {e}"),
        }
    }

    struct Case {
        method: Method,
        uri: &'static str,
        body: &'static str,
        /// gRPC path and the request as JSON.
        want: Option<(&'static str, &'static str)>,
        want_err: Option<(Code, &'static str)>,
    }

    #[test]
    fn decode_request_table() {
        let ok = |method, uri, body, grpc, json| Case {
            method,
            uri,
            body,
            want: Some((grpc, json)),
            want_err: None,
        };
        let err = |method, uri, body, code, msg| Case {
            method,
            uri,
            body,
            want: None,
            want_err: Some((code, msg)),
        };
        let echo = "/example.v1.EchoService/Echo";
        let cases = [
            ok(
                Method::POST,
                "/v1/echo",
                r#"{"message":"hi","bigNumber":"9007199254740993","tags":["a"]}"#,
                echo,
                r#"{"message":"hi","bigNumber":"9007199254740993","tags":["a"]}"#,
            ),
            ok(Method::POST, "/v1/echo", "", echo, "{}"),
            ok(
                Method::GET,
                "/v1/echo/h%C3%A9%2Fllo?big_number=5&tags=x&tags=y",
                "",
                echo,
                r#"{"message":"hé/llo","bigNumber":"5","tags":["x","y"]}"#,
            ),
            ok(
                Method::POST,
                "/v1/fail",
                r#"{"mode":"trailers"}"#,
                "/example.v1.EchoService/Fail",
                r#"{"mode":"trailers"}"#,
            ),
            err(
                Method::GET,
                "/v2/nothing",
                "",
                Code::NotFound,
                "no route for GET /v2/nothing",
            ),
            err(
                Method::DELETE,
                "/v1/echo",
                "",
                Code::Unimplemented,
                "method DELETE not allowed for /v1/echo; allowed: POST",
            ),
            err(
                Method::POST,
                "/v1/echo",
                r#"{"message":"#,
                Code::InvalidArgument,
                "invalid JSON body: EOF while parsing a value at line 1 column 11",
            ),
            // Unknown query parameters are ignored (ZITADEL's grpc-gateway does).
            ok(
                Method::GET,
                "/v1/echo/hi?nope=1",
                "",
                echo,
                r#"{"message":"hi"}"#,
            ),
            err(
                Method::GET,
                "/v1/echo/hi?big_number=x",
                "",
                Code::InvalidArgument,
                "invalid value for query parameter 'big_number': 'x' is not a 64-bit integer",
            ),
        ];
        let table = table();
        let opts = JsonOptions::default();
        for case in cases {
            let label = format!("{} {}", case.method, case.uri);
            let got = decode_request(
                &table,
                &opts,
                &parts(case.method, case.uri),
                Bytes::from_static(case.body.as_bytes()),
            );
            match (got, case.want, case.want_err) {
                (Ok(call), Some((grpc, json)), None) => {
                    assert_eq!(call.grpc_path, grpc, "{label}");
                    let input = call.route().method().input();
                    let msg = DynamicMessage::decode(input, call.message.clone());
                    let rendered = msg
                        .ok()
                        .and_then(|m| switchyard_transcode::json::encode_message(&m, &opts).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned());
                    assert_eq!(rendered.as_deref(), Some(json), "{label}");
                }
                (Err(status), None, Some((code, msg))) => {
                    assert_eq!((status.code(), status.message()), (code, msg), "{label}");
                }
                (got, want, want_err) => {
                    panic!("{label}: got {got:?}, want {want:?} / {want_err:?}")
                }
            }
        }
    }

    #[tokio::test]
    async fn encode_response_renders_json() {
        let table = table();
        let opts = JsonOptions::default();
        let call = match decode_request(
            &table,
            &opts,
            &parts(Method::POST, "/v1/echo"),
            Bytes::new(),
        ) {
            Ok(call) => call,
            Err(e) => panic!("{e}"),
        };
        let Some(desc) = testutil::pool().get_message_by_name("example.v1.EchoResponse") else {
            panic!("no EchoResponse");
        };
        let mut reply = DynamicMessage::new(desc);
        reply.set_field_by_name("message", Value::String("hi".into()));
        reply.set_field_by_name("big_number", Value::I64(1 << 60));
        let response = encode_response(
            call.route(),
            &opts,
            Bytes::from(reply.encode_to_vec()),
            Encoding::Identity,
        );
        let response = match response {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        // 64-bit as a string, zero values (zeroValue) omitted.
        assert_eq!(
            body_text(response).await,
            r#"{"message":"hi","bigNumber":"1152921504606846976"}"#
        );

        let bad = encode_response(
            call.route(),
            &opts,
            Bytes::from_static(b"\xff"),
            Encoding::Identity,
        );
        assert_eq!(bad.err().map(|s| s.code()), Some(Code::Internal));
    }

    #[tokio::test]
    async fn encode_error_table() {
        let pool = testutil::pool();
        let cases = [
            (
                testutil::failed_precondition_with_detail("COMMAND-6M0sf", "Thing is not inactive"),
                400,
                r#"{"code":9,"message":"Thing is not inactive","details":[{"@type":"type.googleapis.com/example.v1.ErrorDetail","id":"COMMAND-6M0sf","message":"Thing is not inactive"}]}"#,
            ),
            (
                Status::not_found("no route"),
                404,
                r#"{"code":5,"message":"no route","details":[]}"#,
            ),
            (
                Status::unauthenticated("who?"),
                401,
                r#"{"code":16,"message":"who?","details":[]}"#,
            ),
            (
                Status::unimplemented("nope"),
                501,
                r#"{"code":12,"message":"nope","details":[]}"#,
            ),
            (
                Status::cancelled(""),
                499,
                r#"{"code":1,"message":"","details":[]}"#,
            ),
        ];
        for (status, want_http, want_body) in cases {
            let response = encode_error(&status, &pool);
            assert_eq!(response.status().as_u16(), want_http, "{status:?}");
            assert_eq!(
                response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.as_bytes()),
                Some(&b"application/json"[..])
            );
            assert_eq!(body_text(response).await, want_body);
        }
    }
}
