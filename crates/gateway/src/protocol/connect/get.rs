//! Connect unary over GET (<https://connectrpc.com/docs/protocol>, "Unary-Get-Request"): a
//! method whose descriptor says `idempotency_level = NO_SIDE_EFFECTS` may be called as
//! `GET /pkg.Service/Method?connect=v1&encoding=json|proto&message=…[&base64=1][&compression=…]`,
//! the message in the query instead of the body, so that browsers, CDNs and HTTP caches can
//! keep the answer. Any other method answers 405 with `Allow: POST`, as connect-go does.
//!
//! `compression=gzip` says the message was gzipped before it was base64-encoded (or
//! percent-encoded); it is inflated with the shared `call::compression`, held to
//! `limits.max_body_bytes` while it inflates, exactly as a POST body is.
//!
//! The answer is Connect unary's ([`super::ConnectUnary`] renders it, gzipped from 1 KiB when
//! the client takes gzip), with `Vary: Accept-Encoding` added because a cache may store it.
//! Converting the message between codecs is `super`'s.

use base64::Engine as _;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use tonic::Status;

use super::{ConnectUnary, error, forwarded_metadata, json_for, parse_timeout, to_proto};
use crate::BoxError;
use crate::call::compression::{self, ACCEPTED, Encoding};
use crate::call::frame::Side;
use crate::call::{Call, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::protocol::{ClientProtocol, MessageEncoder, Refused, Stage, proto_encoder, read_body};
use crate::state::GatewayState;

/// The only `connect` query value the protocol defines.
const VERSION: &str = "v1";

/// Connect unary over GET.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectGet;

/// What the head of a GET carries: the codec of `encoding`, the message from `message`
/// (base64-decoded when `base64=1`, still compressed and in that codec) and how the message
/// and the answer are compressed.
pub(crate) struct GetHead {
    codec: Codec,
    message: Bytes,
    /// The message's `compression`; the answer's, from `Accept-Encoding`.
    wire: crate::protocol::Wire,
}

/// The query parameters of a Connect GET, percent-decoded (bytes: the message of
/// `encoding=proto` need not be UTF-8).
#[derive(Debug, Default, PartialEq, Eq)]
struct Query {
    connect: Option<Vec<u8>>,
    encoding: Option<Vec<u8>>,
    message: Option<Vec<u8>>,
    base64: Option<Vec<u8>>,
    compression: Option<Vec<u8>>,
}

impl Query {
    /// Splits `a=b&c=d` (`+` is a space, as in HTML forms and Go's `url.ParseQuery`); the first
    /// of a repeated parameter wins and parameters the protocol does not define are ignored.
    fn parse(query: &str) -> Self {
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode_component(name).as_slice() {
                b"connect" => &mut out.connect,
                b"encoding" => &mut out.encoding,
                b"message" => &mut out.message,
                b"base64" => &mut out.base64,
                b"compression" => &mut out.compression,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(decode_component(value));
            }
        }
        out
    }
}

/// One percent-encoded query component as bytes.
fn decode_component(raw: &str) -> Vec<u8> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

/// The message of `base64=1`: URL-safe base64, padded or not (connect-go sends it unpadded).
fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Status> {
    let trimmed = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"="));
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed.unwrap_or(text))
        .map_err(|e| {
            Status::invalid_argument(format!(
                "the message parameter is not URL-safe base64 (base64=1): {e}"
            ))
        })
}

/// Shown where a parameter's value is not UTF-8.
fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The 405 of a method Connect GET may not call: it is streaming, or its descriptor does
/// not say `NO_SIDE_EFFECTS`.
fn not_allowed(state: &GatewayState, call_path: &str, why: &str) -> Refused {
    let status = Status::unimplemented(format!(
        "GET is not allowed for {call_path}: {why}; call it with POST"
    ));
    let mut response = error::encode_error(&status, &state.pool);
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Refused { status, response }
}

/// The 415 of an `encoding` Connect does not define.
fn unsupported_encoding(state: &GatewayState, encoding: &[u8]) -> Refused {
    let status = Status::invalid_argument(format!(
        "unsupported encoding {:?}: expected \"json\" or \"proto\"",
        lossy(encoding)
    ));
    let mut response = error::encode_error(&status, &state.pool);
    *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    Refused { status, response }
}

/// What a GET's answer is compressed with (when it is large enough to be worth it). A GET's
/// `Accept-Encoding` is plain HTTP content negotiation, read by browsers, curl and caches
/// alike, so when it is there it decides (RFC 9110 §12.5.3: a coding it does not list is not
/// acceptable). Without it any coding is acceptable, and we follow the request's own
/// `compression`, as connect-go does for every unary call.
fn response_encoding(request: Encoding, headers: &HeaderMap) -> Encoding {
    if headers.contains_key(header::ACCEPT_ENCODING) {
        Encoding::Identity.for_response(headers, header::ACCEPT_ENCODING.as_str())
    } else {
        request
    }
}

/// A GET answer may be cached; it differs by the compression the client accepts.
fn vary(mut response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

impl ClientProtocol for ConnectGet {
    type Head = GetHead;

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, GetHead), Refused> {
        let refuse = |status: Status| Refused {
            response: vary(error::encode_error(&status, &state.pool)),
            status,
        };
        let entry = state.method(parts.uri.path()).map_err(refuse)?;
        if entry.descriptor.is_client_streaming() || entry.descriptor.is_server_streaming() {
            return Err(not_allowed(state, &entry.path, "it is a streaming method"));
        }
        if !entry.no_side_effects {
            return Err(not_allowed(
                state,
                &entry.path,
                "its descriptor does not say idempotency_level = NO_SIDE_EFFECTS",
            ));
        }
        let query = Query::parse(parts.uri.query().unwrap_or_default());
        // The order of connect-go's checks: version, then encoding, then message.
        if let Some(version) = &query.connect
            && version.as_slice() != VERSION.as_bytes()
        {
            return Err(refuse(Status::invalid_argument(format!(
                "connect must be {VERSION:?}: got {:?}",
                lossy(version)
            ))));
        }
        let codec = match query.encoding.as_deref() {
            None => {
                return Err(refuse(Status::invalid_argument(
                    "missing encoding parameter: set encoding to \"json\" or \"proto\"",
                )));
            }
            Some(b"json") => Codec::Json,
            Some(b"proto") => Codec::Proto,
            Some(other) => return Err(unsupported_encoding(state, other)),
        };
        // Empty is identity, as connect-go reads it; names are matched as the POST headers
        // are (any case).
        let request = match query.compression.as_deref() {
            None | Some(b"") => Encoding::Identity,
            Some(name) => Encoding::parse(name).ok_or_else(|| {
                let mut refused = refuse(Status::unimplemented(format!(
                    "compression {:?} is not supported; supported compressions are {ACCEPTED}",
                    lossy(name)
                )));
                // As a POST's refusal does, the answer names what we read.
                refused
                    .response
                    .headers_mut()
                    .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
                refused
            })?,
        };
        let Some(message) = query.message else {
            return Err(refuse(Status::invalid_argument(
                "missing message parameter",
            )));
        };
        let message = if query.base64.as_deref() == Some(b"1") {
            decode_base64(&message).map_err(refuse)?
        } else {
            message
        };
        let asked = parse_timeout(&parts.headers).map_err(refuse)?;
        let call = state.call(entry, asked);
        let metadata = forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        let head = GetHead {
            codec,
            message: Bytes::from(message),
            wire: crate::protocol::Wire {
                codec,
                request,
                response: response_encoding(request, &parts.headers),
            },
        };
        Ok((call, metadata, head))
    }

    async fn decode_request<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &GetHead,
        _parts: &Parts,
        body: B,
    ) -> Result<Bytes, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // The message is in the query; a GET with a body is malformed (connect-go refuses it).
        if read_body(body, 0).await.is_err() {
            return Err(Status::invalid_argument(
                "a Connect GET carries its message in the query; the body must be empty",
            ));
        }
        let limit = state.opts.max_message_bytes;
        if head.message.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "request message of {} bytes exceeds the limit of {limit} bytes",
                head.message.len()
            )));
        }
        // The same bounded inflater as a POST body's: a bomb in the query stops at the limit.
        let message = compression::inflate(
            head.wire.request,
            head.message.clone(),
            limit,
            Side::Request,
        )?;
        let in_process = crate::protocol::codec::in_process(call);
        to_proto(
            &call.method.input(),
            head.codec,
            message,
            json_for(state, call),
            !in_process,
        )
    }

    fn decode_stream<B>(
        &self,
        _state: &GatewayState,
        call: &Call,
        _head: &GetHead,
        _body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Err(super::not_unary(call))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        head: &GetHead,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let unary = ConnectUnary { codec: head.codec };
        unary
            .encode_response(state, call, &head.wire, reply)
            .map(vary)
    }

    fn message_encoder(
        &self,
        _state: &GatewayState,
        _call: &Call,
        _head: &GetHead,
    ) -> MessageEncoder {
        proto_encoder()
    }

    async fn encode_stream(
        &self,
        state: &GatewayState,
        call: &Call,
        _head: &GetHead,
        _reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        error::encode_error(&super::not_unary(call), &state.pool)
    }

    fn encode_error(
        &self,
        state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        vary(error::encode_error(status, &state.pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use prost::Message as _;
    use prost_reflect::DynamicMessage;
    use tonic::Code;

    #[test]
    fn query_parse_table() {
        let cases = [
            ("", Query::default()),
            (
                "connect=v1&encoding=json&message=%7B%22a%22%3A1%7D",
                Query {
                    connect: Some(b"v1".to_vec()),
                    encoding: Some(b"json".to_vec()),
                    message: Some(br#"{"a":1}"#.to_vec()),
                    ..Query::default()
                },
            ),
            // `+` is a space; the first of a repeated parameter wins; others are ignored.
            (
                "message=a+b&message=c&x=1&base64",
                Query {
                    message: Some(b"a b".to_vec()),
                    base64: Some(Vec::new()),
                    ..Query::default()
                },
            ),
            // Percent-encoded bytes need not be UTF-8.
            (
                "encoding=proto&message=%0A%FF",
                Query {
                    encoding: Some(b"proto".to_vec()),
                    message: Some(vec![0x0a, 0xff]),
                    ..Query::default()
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Query::parse(input), want, "{input:?}");
        }
    }

    /// What a base64 text decodes to, or the code of its refusal.
    type Decoded = Result<&'static [u8], Code>;

    #[test]
    fn base64_padded_or_not() {
        let cases: [(&[u8], Decoded); 6] = [
            (b"aGk", Ok(b"hi")),
            (b"aGk=", Ok(b"hi")),
            (b"_-8", Ok(&[0xff, 0xef])),
            (b"_-8=", Ok(&[0xff, 0xef])),
            (b"", Ok(b"")),
            // The standard alphabet's `+` and `/` are not URL-safe base64.
            (b"/+8", Err(Code::InvalidArgument)),
        ];
        for (input, want) in cases {
            let got = decode_base64(input).map_err(|s| s.code());
            assert_eq!(
                got.as_deref(),
                want.map(<[u8]>::to_vec).as_deref(),
                "{input:?}"
            );
        }
    }

    /// The head and the body of a GET to `uri`, as the pipeline drives them; the HTTP status
    /// of a refusal, else the request message (protobuf).
    async fn decode(uri: &str) -> Result<Bytes, (StatusCode, Code)> {
        let state = crate::testutil::state();
        let parts = Request::builder()
            .method("GET")
            .uri(uri)
            .body(())
            .map(|r| r.into_parts().0)
            .map_err(|_| (StatusCode::BAD_REQUEST, Code::Internal))?;
        let (call, _, head) = ConnectGet
            .decode_head(&state, &parts)
            .map_err(|r| (r.response.status(), r.status.code()))?;
        let body = http_body_util::Empty::<Bytes>::new();
        ConnectGet
            .decode_request(&state, &call, &head, &parts, body)
            .await
            .map_err(|s| (StatusCode::OK, s.code()))
    }

    #[tokio::test]
    async fn decode_table() {
        let lookup = "/example.v1.EchoService/Lookup";
        let hi = {
            let pool = crate::testutil::pool();
            let desc = pool.get_message_by_name("example.v1.EchoRequest");
            let mut msg = desc.map(DynamicMessage::new);
            if let Some(m) = msg.as_mut() {
                m.set_field_by_name("message", prost_reflect::Value::String("hi".into()));
            }
            msg.map(|m| m.encode_to_vec()).unwrap_or_default()
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hi);
        let unpadded = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
        let gzipped = |data: &[u8]| {
            compression::gzip(data)
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        let hi_gzip = unpadded(&gzipped(&hi));
        let json_gzip = unpadded(&gzipped(br#"{"message":"hi"}"#));
        // 8 MiB of zeros (twice the default limit) in about 8 KiB of gzip.
        let bomb = unpadded(&gzipped(&vec![0u8; 8 << 20]));
        let b64_padded = base64::engine::general_purpose::URL_SAFE.encode(&hi);
        let json = "%7B%22message%22%3A%22hi%22%7D";
        let bad = |status: StatusCode, code: Code| Err((status, code));
        // (the URI, the request message or the HTTP status and code of its refusal)
        type Want = Result<Vec<u8>, (StatusCode, Code)>;
        let cases: Vec<(String, Want)> = vec![
            (
                format!("{lookup}?connect=v1&encoding=json&message={json}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=json&message={json}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=proto&base64=1&message={b64}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=proto&base64=1&message={b64_padded}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=json&base64=1&message=eyJtZXNzYWdlIjoiaGkifQ"),
                Ok(hi.clone()),
            ),
            (format!("{lookup}?encoding=proto&message="), Ok(Vec::new())),
            (
                format!("{lookup}?connect=v2&encoding=json&message={json}"),
                bad(StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?message={json}"),
                bad(StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?encoding=json"),
                bad(StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?encoding=xml&message=x"),
                bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?encoding=json&compression=br&message={json}"),
                bad(StatusCode::NOT_IMPLEMENTED, Code::Unimplemented),
            ),
            // gzip after base64, as connect-go and connect-es send it; names in any case.
            (
                format!("{lookup}?encoding=proto&base64=1&compression=gzip&message={hi_gzip}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=json&base64=1&compression=GZIP&message={json_gzip}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=json&compression=identity&message={json}"),
                Ok(hi.clone()),
            ),
            (
                format!("{lookup}?encoding=json&compression=&message={json}"),
                Ok(hi.clone()),
            ),
            // Not gzip at all; a bomb stops at the limit.
            (
                format!("{lookup}?encoding=proto&base64=1&compression=gzip&message={b64}"),
                bad(StatusCode::OK, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?encoding=proto&base64=1&compression=gzip&message={bomb}"),
                bad(StatusCode::OK, Code::ResourceExhausted),
            ),
            (
                format!("{lookup}?encoding=proto&base64=1&message=%2B%2F"),
                bad(StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ),
            // Not base64 without base64=1, and not a valid message.
            (
                format!("{lookup}?encoding=proto&message={b64}"),
                bad(StatusCode::OK, Code::InvalidArgument),
            ),
            (
                format!("{lookup}?encoding=json&message=%7B"),
                bad(StatusCode::OK, Code::InvalidArgument),
            ),
            (
                format!("/example.v1.EchoService/Echo?encoding=json&message={json}"),
                bad(StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented),
            ),
            (
                format!("/example.v1.EchoService/Stream?encoding=json&message={json}"),
                bad(StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented),
            ),
        ];
        for (uri, want) in cases {
            let got = decode(&uri).await.map(|b| b.to_vec());
            assert_eq!(got, want, "{uri}");
        }
    }

    #[test]
    fn response_encoding_table() {
        // (the request's compression, its Accept-Encoding, the answer's encoding)
        let cases = [
            (Encoding::Identity, None, Encoding::Identity),
            (Encoding::Gzip, None, Encoding::Gzip),
            (
                Encoding::Identity,
                Some("gzip, deflate, br"),
                Encoding::Gzip,
            ),
            (Encoding::Gzip, Some("gzip"), Encoding::Gzip),
            // Present, it decides: a coding it does not list is not acceptable.
            (Encoding::Gzip, Some("identity"), Encoding::Identity),
            (Encoding::Gzip, Some("gzip;q=0"), Encoding::Identity),
            (Encoding::Identity, Some("br"), Encoding::Identity),
        ];
        for (request, accept, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = accept {
                headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            assert_eq!(
                response_encoding(request, &headers),
                want,
                "{request:?} {accept:?}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_compression_names_what_we_read() {
        let state = crate::testutil::state();
        let parts = Request::builder()
            .method("GET")
            .uri("/example.v1.EchoService/Lookup?encoding=json&compression=snappy&message=%7B%7D")
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| Request::new(()).into_parts().0);
        let Err(refused) = ConnectGet.decode_head(&state, &parts) else {
            panic!("snappy was accepted");
        };
        assert_eq!(refused.response.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            refused.status.message(),
            "compression \"snappy\" is not supported; supported compressions are gzip, identity"
        );
        let headers = refused.response.headers();
        assert_eq!(
            headers
                .get(header::ACCEPT_ENCODING)
                .map(HeaderValue::as_bytes),
            Some(ACCEPTED.as_bytes())
        );
        assert_eq!(
            headers.get(header::VARY).map(HeaderValue::as_bytes),
            Some(&b"accept-encoding"[..])
        );
    }

    #[tokio::test]
    async fn not_allowed_answers_405_with_allow_post() {
        let state = crate::testutil::state();
        let refused = not_allowed(&state, "/example.v1.EchoService/Echo", "why");
        assert_eq!(refused.response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            refused
                .response
                .headers()
                .get(header::ALLOW)
                .map(HeaderValue::as_bytes),
            Some(&b"POST"[..])
        );
    }
}
