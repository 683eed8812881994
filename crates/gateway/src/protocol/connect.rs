//! The Connect protocol, unary only (<https://connectrpc.com/docs/protocol>): `POST
//! /pkg.Service/Method` with an `application/json` or `application/proto` body.
//!
//! This module decodes the Connect request into one gRPC call (message, metadata, timeout),
//! and renders the answer: the message with HTTP 200, or the Connect error JSON with the
//! HTTP status of its code. The code names and statuses come from
//! `switchyard_transcode::status`; running the call is `crate::dispatch`'s job. Connect
//! streaming (`application/connect+*`) is `crate::protocol::connect_stream`'s.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use switchyard_transcode::JsonOptions;
use switchyard_transcode::json::{encode_message, parse_message};
use switchyard_transcode::status::{
    connect_code_name, connect_detail_value, connect_http_status, status_details,
};
use tonic::{Code, Status};
use tower::Service;

use crate::BoxError;
use crate::detect::Codec;
use crate::dispatch::{self, UnaryCall, UnaryReply};
use crate::gateway::GatewayState;
use crate::protocol::{forwarded_metadata, full_response, read_body, visible_metadata};

/// The header a Connect client may send to name the protocol version; only `1` exists.
const PROTOCOL_VERSION: &str = "connect-protocol-version";
/// The client's deadline in milliseconds.
const TIMEOUT_MS: &str = "connect-timeout-ms";

/// Serves one Connect unary request end to end; errors become Connect error responses.
pub(crate) async fn serve<S, B, ReqB>(
    state: &GatewayState,
    service: S,
    codec: Codec,
    request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
{
    let limit = state.opts.max_message_bytes;
    let (parts, body) = request.into_parts();
    let outcome = async {
        let method = state
            .methods
            .get(parts.uri.path())
            .ok_or_else(|| Status::unimplemented(format!("unknown method {}", parts.uri.path())))?;
        let body = read_body(body, limit).await?;
        let json = state.json_for(parts.uri.path());
        let mut call = decode_request(method, codec, &parts, body, json)?;
        call.metadata = forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        call.timeout = state.timeout_for(&call.path, call.timeout);
        let reply = dispatch::unary(service, call, limit).await?;
        encode_response(method, codec, reply, json)
    }
    .await;
    outcome.unwrap_or_else(|status| encode_error(&status, &state.pool))
}

/// Turns a Connect unary request into the gRPC call.
///
/// # Errors
///
/// INVALID_ARGUMENT for an unknown protocol version, a malformed timeout or a body that is
/// not the method's input message; UNIMPLEMENTED for streaming methods and compressed bodies.
pub(crate) fn decode_request(
    method: &MethodDescriptor,
    codec: Codec,
    parts: &Parts,
    body: Bytes,
    json: &JsonOptions,
) -> Result<UnaryCall, Status> {
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(Status::unimplemented(format!(
            "{} is a streaming method; Connect streaming is not supported",
            method.full_name()
        )));
    }
    if let Some(version) = parts.headers.get(PROTOCOL_VERSION)
        && version.as_bytes() != b"1"
    {
        return Err(Status::invalid_argument(format!(
            "unsupported {PROTOCOL_VERSION} {:?}; expected \"1\"",
            String::from_utf8_lossy(version.as_bytes())
        )));
    }
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        // Connect: an unsupported compression is `unimplemented`.
        return Err(Status::unimplemented(format!(
            "unsupported content-encoding {:?}; only identity is accepted",
            String::from_utf8_lossy(encoding.as_bytes())
        )));
    }
    let timeout = parse_timeout(&parts.headers)?;
    let message = match codec {
        // Binary bodies already are the message; check that they decode as the input type so
        // that a malformed body is the caller's INVALID_ARGUMENT (as Connect servers answer),
        // not the INTERNAL a gRPC handler gives for undecodable bytes.
        Codec::Proto => {
            prost_reflect::DynamicMessage::decode(method.input(), body.clone()).map_err(|e| {
                Status::invalid_argument(format!(
                    "the body is not a valid {} message: {e}",
                    method.input().full_name()
                ))
            })?;
            body
        }
        Codec::Json => Bytes::from(parse_message(method.input(), &body, json)?.encode_to_vec()),
    };
    Ok(UnaryCall {
        path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        metadata: forwarded_metadata(&parts.headers, None),
        message,
        timeout,
    })
}

/// `connect-timeout-ms`: a positive integer of at most 10 digits.
pub(crate) fn parse_timeout(headers: &http::HeaderMap) -> Result<Option<Duration>, Status> {
    let Some(value) = headers.get(TIMEOUT_MS) else {
        return Ok(None);
    };
    let bad = || Status::invalid_argument(format!("invalid {TIMEOUT_MS}: expected 1 to 10 digits"));
    let digits = value.to_str().map_err(|_| bad())?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis: u64 = digits.parse().map_err(|_| bad())?;
    Ok(Some(Duration::from_millis(millis)))
}

/// Renders a successful call: HTTP 200, the message in the request's codec, response
/// metadata as headers and trailers as `trailer-`-prefixed headers.
///
/// # Errors
///
/// INTERNAL when the response is not the method's output message or cannot be rendered.
pub(crate) fn encode_response(
    method: &MethodDescriptor,
    codec: Codec,
    reply: UnaryReply,
    json: &JsonOptions,
) -> Result<Response<tonic::body::Body>, Status> {
    let body = match codec {
        Codec::Proto => reply.message,
        Codec::Json => {
            let message = DynamicMessage::decode(method.output(), reply.message).map_err(|e| {
                Status::internal(format!(
                    "response is not a {}: {e}",
                    method.output().full_name()
                ))
            })?;
            Bytes::from(encode_message(&message, json)?)
        }
    };
    let mut response = full_response(StatusCode::OK, codec.content_type(), body);
    let headers = response.headers_mut();
    for (name, value) in visible_metadata(reply.headers) {
        headers.append(name, value);
    }
    for (name, value) in visible_metadata(reply.trailers) {
        if let Ok(prefixed) = HeaderName::try_from(format!("trailer-{name}")) {
            headers.append(prefixed, value);
        }
    }
    Ok(response)
}

/// Renders `status` as a Connect unary error: the error JSON
/// `{"code":"...","message":"...","details":[{"type","value","debug"}]}` with the HTTP status
/// Connect gives the code, and the status metadata as headers.
pub(crate) fn encode_error(status: &Status, pool: &DescriptorPool) -> Response<tonic::body::Body> {
    let code = error_code(status);
    let body = error_json(status, pool);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = full_response(connect_http_status(code), "application/json", bytes);
    let headers = response.headers_mut();
    for (name, value) in visible_metadata(status.metadata().clone().into_headers()) {
        headers.append(name, value);
    }
    response
}

/// The code an error is sent with: an OK status is never an error; treat it as the Connect
/// spec treats a broken peer.
fn error_code(status: &Status) -> Code {
    if status.code() == Code::Ok {
        Code::Unknown
    } else {
        status.code()
    }
}

/// The Connect error JSON, `{"code":"...","message":"...","details":[{"type","value","debug"}]}`,
/// shared by unary errors and the end-of-stream message.
pub(crate) fn error_json(status: &Status, pool: &DescriptorPool) -> serde_json::Value {
    let code = error_code(status);
    let mut body = serde_json::Map::new();
    body.insert("code".into(), connect_code_name(code).into());
    if !status.message().is_empty() {
        body.insert("message".into(), status.message().into());
    }
    let details: Vec<serde_json::Value> = status_details(status, pool)
        .iter()
        .map(|detail| {
            let mut d = serde_json::Map::new();
            d.insert("type".into(), detail.type_name.clone().into());
            d.insert("value".into(), connect_detail_value(detail).into());
            if let Some(debug) = &detail.debug {
                d.insert("debug".into(), debug.clone());
            }
            serde_json::Value::Object(d)
        })
        .collect();
    if !details.is_empty() {
        body.insert("details".into(), details.into());
    }
    serde_json::Value::Object(body)
}

/// The answer to a known Connect path posted with a content type Connect does not define.
pub(crate) fn unsupported_media() -> Response<tonic::body::Body> {
    let mut response = full_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", "");
    response.headers_mut().insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static("application/json, application/proto"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use prost::Message;

    use crate::testutil;

    async fn body_json(response: Response<tonic::body::Body>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    #[tokio::test]
    async fn error_json_carries_code_message_and_details() {
        let pool = testutil::pool();
        let status = testutil::failed_precondition_with_detail("E-1", "user is locked");
        let response = encode_error(&status, &pool);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        let json = body_json(response).await;
        assert_eq!(json["code"], "failed_precondition");
        assert_eq!(json["message"], "user is locked");
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "example.v1.ErrorDetail");
        assert_eq!(detail["debug"]["id"], "E-1");
        // Unpadded standard base64 of the encoded ErrorDetail.
        let value = detail["value"].as_str().unwrap_or_default();
        assert!(!value.ends_with('='));
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value)
            .unwrap_or_default();
        let want = testutil::error_detail("E-1", "user is locked").encode_to_vec();
        assert_eq!(raw, want);
    }

    #[tokio::test]
    async fn error_status_per_code() {
        let pool = testutil::pool();
        let cases = [
            (Code::InvalidArgument, 400, "invalid_argument"),
            (Code::Unauthenticated, 401, "unauthenticated"),
            (Code::PermissionDenied, 403, "permission_denied"),
            (Code::NotFound, 404, "not_found"),
            (Code::AlreadyExists, 409, "already_exists"),
            (Code::ResourceExhausted, 429, "resource_exhausted"),
            (Code::Unimplemented, 501, "unimplemented"),
            (Code::Unavailable, 503, "unavailable"),
            (Code::DeadlineExceeded, 504, "deadline_exceeded"),
            (Code::Internal, 500, "internal"),
            (Code::Ok, 500, "unknown"),
        ];
        for (code, http, name) in cases {
            let response = encode_error(&Status::new(code, ""), &pool);
            assert_eq!(response.status().as_u16(), http, "{code:?}");
            let json = body_json(response).await;
            assert_eq!(json["code"], name, "{code:?}");
            assert!(json.get("message").is_none(), "empty message is omitted");
            assert!(json.get("details").is_none(), "no details, no key");
        }
    }

    #[test]
    fn timeout_header() {
        let cases = [
            (Some("1500"), Ok(Some(Duration::from_millis(1500)))),
            (None, Ok(None)),
            (Some("0"), Ok(Some(Duration::ZERO))),
            (Some("12345678901"), Err(Code::InvalidArgument)),
            (Some("-1"), Err(Code::InvalidArgument)),
            (Some(""), Err(Code::InvalidArgument)),
            (Some("1s"), Err(Code::InvalidArgument)),
        ];
        for (input, want) in cases {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = input {
                headers.insert(TIMEOUT_MS, HeaderValue::from_static(v));
            }
            let got = parse_timeout(&headers).map_err(|s| s.code());
            assert_eq!(got, want, "{input:?}");
        }
    }

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut builder = Request::builder()
            .method("POST")
            .uri("/example.v1.EchoService/Echo");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| Request::new(()).into_parts().0)
    }

    #[test]
    fn decode_request_rejections() {
        let pool = testutil::pool();
        let echo = pool
            .get_service_by_name("example.v1.EchoService")
            .and_then(|s| s.methods().find(|m| m.name() == "Echo"));
        let stream = pool
            .get_service_by_name("example.v1.EchoService")
            .and_then(|s| s.methods().find(|m| m.name() == "Stream"));
        let (Some(echo), Some(stream)) = (echo, stream) else {
            panic!("test proto lacks Echo/Stream");
        };
        let json = JsonOptions::default();
        let body = || Bytes::from_static(b"{\"message\":\"hi\",\"unknown_field\":1}");
        let cases: [(&MethodDescriptor, Parts, Bytes, Result<(), Code>); 6] = [
            (&echo, parts(&[]), body(), Ok(())),
            (&echo, parts(&[(PROTOCOL_VERSION, "1")]), body(), Ok(())),
            (
                &echo,
                parts(&[(PROTOCOL_VERSION, "2")]),
                body(),
                Err(Code::InvalidArgument),
            ),
            (
                &echo,
                parts(&[("content-encoding", "gzip")]),
                body(),
                Err(Code::Unimplemented),
            ),
            (
                &echo,
                parts(&[]),
                Bytes::from_static(b"{\"message\":1"),
                Err(Code::InvalidArgument),
            ),
            (&stream, parts(&[]), body(), Err(Code::Unimplemented)),
        ];
        for (i, (method, parts, body, want)) in cases.into_iter().enumerate() {
            let got = decode_request(method, Codec::Json, &parts, body, &json)
                .map(|_| ())
                .map_err(|s| s.code());
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn decode_request_json_accepts_both_names_and_forwards_metadata() {
        let pool = testutil::pool();
        let Some(echo) = pool
            .get_service_by_name("example.v1.EchoService")
            .and_then(|s| s.methods().find(|m| m.name() == "Echo"))
        else {
            panic!("test proto lacks Echo");
        };
        let body =
            Bytes::from_static(b"{\"message\":\"hi\",\"big_number\":\"7\",\"tags\":[\"a\"]}");
        let parts = parts(&[("authorization", "Bearer x"), ("connect-timeout-ms", "100")]);
        let call = decode_request(&echo, Codec::Json, &parts, body, &JsonOptions::default());
        let Ok(call) = call else {
            panic!("decode failed: {call:?}");
        };
        assert_eq!(call.path, "/example.v1.EchoService/Echo");
        assert_eq!(call.timeout, Some(Duration::from_millis(100)));
        assert!(call.metadata.contains_key("authorization"));
        assert!(!call.metadata.contains_key("connect-timeout-ms"));
        let msg = DynamicMessage::decode(echo.input(), call.message).ok();
        let big = msg
            .as_ref()
            .and_then(|m| m.get_field_by_name("big_number"))
            .and_then(|v| v.as_i64());
        assert_eq!(big, Some(7));
    }
}
