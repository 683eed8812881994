//! The Connect protocol (<https://connectrpc.com/docs/protocol>), unary: `POST
//! /pkg.Service/Method` with an `application/json` or `application/proto` body; the answer is
//! the message with HTTP 200, or the Connect error JSON with the HTTP status of its code.
//! Streaming (`application/connect+json|proto`) is [`stream`]'s, unary over GET (methods
//! without side effects) [`get`]'s; the error JSON is [`error`]'s, shared by all three.

pub(crate) mod error;
pub(crate) mod get;
pub(crate) mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use tonic::Status;

pub(crate) use super::codec::{from_proto, in_process, json_for, to_proto};
use super::{
    ClientProtocol, MessageEncoder, Refused, Stage, Wire, forwarded_metadata, full_response,
    proto_encoder, read_body, visible_metadata,
};
use crate::BoxError;
use crate::call::compression::{self, ACCEPTED, COMPRESS_MIN_BYTES, Encoding};
use crate::call::frame::Side;
use crate::call::{Call, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::state::GatewayState;

/// The header a Connect client may send to name the protocol version; only `1` exists.
const PROTOCOL_VERSION: &str = "connect-protocol-version";
/// The client's deadline in milliseconds.
const TIMEOUT_MS: &str = "connect-timeout-ms";

/// Connect unary in one codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectUnary {
    pub(crate) codec: Codec,
}

impl ClientProtocol for ConnectUnary {
    type Head = Wire;

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, Wire), Refused> {
        let refuse = |status: Status| Refused {
            response: error::encode_error(&status, &state.pool),
            status,
        };
        let entry = state.method(parts.uri.path()).map_err(refuse)?;
        let method = &entry.descriptor;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(refuse(Status::unimplemented(format!(
                "{} is a streaming method; call it with application/connect+json or +proto",
                method.full_name()
            ))));
        }
        check_version(&parts.headers).map_err(refuse)?;
        let wire = Wire::from_headers(
            self.codec,
            &parts.headers,
            header::CONTENT_ENCODING.as_str(),
            header::ACCEPT_ENCODING.as_str(),
        )
        .map_err(|status| {
            // connect-go names what it takes in the answer's Accept-Encoding too.
            let mut refused = refuse(status);
            refused
                .response
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
            refused
        })?;
        let asked = parse_timeout(&parts.headers).map_err(refuse)?;
        let call = state.call(entry, asked);
        let metadata = forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        Ok((call, metadata, wire))
    }

    async fn decode_request<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        _parts: &Parts,
        body: B,
    ) -> Result<Bytes, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = state.opts.max_message_bytes;
        let body = read_body(body, limit).await?;
        let body = compression::inflate(wire.request, body, limit, Side::Request)?;
        to_proto(
            &call.method.input(),
            self.codec,
            body,
            json_for(state, call),
            !in_process(call),
        )
    }

    fn decode_stream<B>(
        &self,
        _state: &GatewayState,
        call: &Call,
        _head: &Wire,
        _body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Err(not_unary(call))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let body = from_proto(
            &call.method.output(),
            self.codec,
            reply.message,
            json_for(state, call),
        )?;
        let gzip = wire.response == Encoding::Gzip && body.len() >= COMPRESS_MIN_BYTES;
        let body = if gzip {
            compression::gzip(&body)?
        } else {
            body
        };
        let mut response = full_response(StatusCode::OK, self.codec.content_type(), body);
        let headers = response.headers_mut();
        if gzip {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(Encoding::Gzip.name()),
            );
        }
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
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

    fn message_encoder(&self, _state: &GatewayState, _call: &Call, _head: &Wire) -> MessageEncoder {
        proto_encoder()
    }

    async fn encode_stream(
        &self,
        state: &GatewayState,
        call: &Call,
        _head: &Wire,
        _reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        error::encode_error(&not_unary(call), &state.pool)
    }

    fn encode_error(
        &self,
        state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        error::encode_error(status, &state.pool)
    }
}

/// `decode_head` refuses streaming methods, so this is never reached; it says why if it were.
pub(crate) fn not_unary(call: &Call) -> Status {
    Status::unimplemented(format!(
        "{} streams; Connect unary cannot carry it",
        call.method.full_name()
    ))
}

/// `connect-protocol-version`, when sent, must be `1`.
fn check_version(headers: &HeaderMap) -> Result<(), Status> {
    match headers.get(PROTOCOL_VERSION) {
        Some(version) if version.as_bytes() != b"1" => Err(Status::invalid_argument(format!(
            "unsupported {PROTOCOL_VERSION} {:?}; expected \"1\"",
            String::from_utf8_lossy(version.as_bytes())
        ))),
        _ => Ok(()),
    }
}

/// `connect-timeout-ms`: a positive integer of at most 10 digits.
///
/// # Errors
///
/// INVALID_ARGUMENT for anything else.
pub(crate) fn parse_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
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

/// Every content type a method path takes, for `Accept-Post` (RFC 9110 §15.5.16 and connect-go
/// list them on a 415).
const ACCEPT_POST: &str = "application/connect+json, application/connect+proto, \
    application/grpc, application/grpc+json, application/grpc+proto, \
    application/grpc-web, application/grpc-web+json, application/grpc-web+proto, \
    application/grpc-web-text, application/grpc-web-text+json, application/grpc-web-text+proto, \
    application/json, application/proto";

/// The answer to a known Connect path posted with a content type Connect does not define (an
/// unknown codec): HTTP 415 with `Accept-Post`, as connect-go answers.
pub(crate) fn unsupported_media() -> Response<tonic::body::Body> {
    let mut response = full_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", "");
    response.headers_mut().insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static(ACCEPT_POST),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use prost_reflect::DynamicMessage;
    use tonic::Code;

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

    fn parts_for(path: &'static str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut builder = Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| Request::new(()).into_parts().0)
    }

    /// The head and then the body through [`ConnectUnary`], as the pipeline drives them.
    async fn decode(
        path: &'static str,
        headers: &[(&'static str, &'static str)],
        body: &'static [u8],
    ) -> Result<(Call, HeaderMap, Bytes), Code> {
        let state = crate::testutil::state();
        let connect = ConnectUnary { codec: Codec::Json };
        let parts = parts_for(path, headers);
        let (call, metadata, wire) = connect
            .decode_head(&state, &parts)
            .map_err(|r| r.status.code())?;
        let body = http_body_util::Full::new(Bytes::from_static(body));
        let message = connect
            .decode_request(&state, &call, &wire, &parts, body)
            .await
            .map_err(|s| s.code())?;
        Ok((call, metadata, message))
    }

    #[tokio::test]
    async fn decode_rejections() {
        let echo = "/example.v1.EchoService/Echo";
        let body: &'static [u8] = b"{\"message\":\"hi\",\"unknown_field\":1}";
        // (the path, its headers, the body, the outcome)
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static [u8],
            Result<(), Code>,
        );
        let cases: [Case; 6] = [
            (echo, &[], body, Ok(())),
            (echo, &[(PROTOCOL_VERSION, "1")], body, Ok(())),
            (
                echo,
                &[(PROTOCOL_VERSION, "2")],
                body,
                Err(Code::InvalidArgument),
            ),
            (
                echo,
                &[("content-encoding", "br")],
                body,
                Err(Code::Unimplemented),
            ),
            (echo, &[], b"{\"message\":1", Err(Code::InvalidArgument)),
            (
                "/example.v1.EchoService/Stream",
                &[],
                body,
                Err(Code::Unimplemented),
            ),
        ];
        for (i, (path, headers, body, want)) in cases.into_iter().enumerate() {
            let got = decode(path, headers, body).await.map(|_| ());
            assert_eq!(got, want, "case {i}");
        }
    }

    #[tokio::test]
    async fn decode_json_accepts_both_names_and_forwards_metadata() {
        let body = b"{\"message\":\"hi\",\"big_number\":\"7\",\"tags\":[\"a\"]}";
        let headers = [("authorization", "Bearer x"), ("connect-timeout-ms", "100")];
        let decoded = decode("/example.v1.EchoService/Echo", &headers, body).await;
        let Ok((call, metadata, message)) = decoded else {
            panic!("decode failed: {decoded:?}");
        };
        assert_eq!(&*call.path, "/example.v1.EchoService/Echo");
        assert_eq!(call.timeout, Some(Duration::from_millis(100)));
        assert!(metadata.contains_key("authorization"));
        assert!(!metadata.contains_key("connect-timeout-ms"));
        let msg = DynamicMessage::decode(call.method.input(), message).ok();
        let big = msg
            .as_ref()
            .and_then(|m| m.get_field_by_name("big_number"))
            .and_then(|v| v.as_i64());
        assert_eq!(big, Some(7));
    }
}
