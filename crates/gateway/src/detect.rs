//! Protocol detection: the one place that decides which protocol a request speaks.
//!
//! The decision uses only the HTTP method, the path and the `content-type` (plus, for CORS, the
//! `access-control-request-method` header): a `GET` of a method path is Connect's, any other
//! `GET` REST's. It never reads the body. What each protocol then
//! does with the request is left to `crate::protocol`.

use http::{HeaderMap, Method, header};

use crate::state::MethodIndex;

/// The wire protocol a request speaks, as decided by [`detect`](crate::Protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Native gRPC (`application/grpc`, `application/grpc+proto`, `+json`, ...).
    Grpc,
    /// gRPC-Web (`application/grpc-web[+proto|+json]`), or its base64 text mode
    /// (`application/grpc-web-text[+proto|+json]`) when `text` is true.
    GrpcWeb {
        /// Whether the body is base64 text (`-text`) rather than binary.
        text: bool,
    },
    /// Connect unary: `POST /pkg.Service/Method` with `application/json` or `application/proto`.
    Connect {
        /// How the message in the body is encoded.
        codec: Codec,
    },
    /// Connect streaming (`application/connect+json|proto`): enveloped messages both ways.
    ConnectStreaming {
        /// How each enveloped message is encoded.
        codec: Codec,
    },
    /// Connect unary over GET: `GET /pkg.Service/Method?encoding=…&message=…` for a method
    /// the descriptors know (whether it may be called so is the protocol's to answer).
    ConnectGet,
    /// A known Connect method path posted with a content type Connect does not know: HTTP 415.
    ConnectUnsupportedMedia,
    /// A CORS preflight (`OPTIONS` with `access-control-request-method`).
    Preflight,
    /// Anything else: looked up in the REST route table.
    Rest,
}

impl Protocol {
    /// The protocol's name in the access log and the metrics: `grpc`, `grpc-web`, `connect`,
    /// `rest` (or `preflight`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb { .. } => "grpc-web",
            Protocol::Connect { .. }
            | Protocol::ConnectStreaming { .. }
            | Protocol::ConnectGet
            | Protocol::ConnectUnsupportedMedia => "connect",
            Protocol::Preflight => "preflight",
            Protocol::Rest => "rest",
        }
    }
}

/// The message encoding of a Connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Proto3 JSON (`application/json`).
    Json,
    /// Binary protobuf (`application/proto`).
    Proto,
}

impl Codec {
    /// The `content-type` Connect unary uses for this codec.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }

    /// The `content-type` Connect streaming uses for this codec.
    pub(crate) fn streaming_content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/connect+json",
            Codec::Proto => "application/connect+proto",
        }
    }
}

/// Picks the protocol of a request from its method, path and headers.
pub(crate) fn detect(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    methods: &MethodIndex,
) -> Protocol {
    if method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return Protocol::Preflight;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
        .unwrap_or_default();

    // gRPC-Web first: "application/grpc-web" also starts with "application/grpc". Any codec
    // suffix is the family's: the protocol module reads proto and json, and refuses others.
    if strip_family(&media, "application/grpc-web-text").is_some() {
        return Protocol::GrpcWeb { text: true };
    }
    if strip_family(&media, "application/grpc-web").is_some() {
        return Protocol::GrpcWeb { text: false };
    }
    if strip_family(&media, "application/grpc").is_some() {
        return Protocol::Grpc;
    }
    match strip_family(&media, "application/connect") {
        Some("json") => return Protocol::ConnectStreaming { codec: Codec::Json },
        Some("proto") => {
            return Protocol::ConnectStreaming {
                codec: Codec::Proto,
            };
        }
        Some(sub) if !sub.is_empty() => return Protocol::ConnectUnsupportedMedia,
        _ => {}
    }

    // Connect unary is recognised by its path naming a method we know; this keeps Connect
    // and REST apart even though both use `application/json`.
    if method == Method::POST && methods.contains(path) {
        return match media.as_str() {
            "application/json" => Protocol::Connect { codec: Codec::Json },
            "application/proto" => Protocol::Connect {
                codec: Codec::Proto,
            },
            _ => Protocol::ConnectUnsupportedMedia,
        };
    }
    if method == Method::GET && methods.contains(path) {
        return Protocol::ConnectGet;
    }
    Protocol::Rest
}

/// Lower-cased media type without parameters: `"Application/JSON; charset=utf-8"` → `"application/json"`.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// For `family` = `application/grpc`: `application/grpc` → `Some("")`, `application/grpc+proto`
/// → `Some("proto")`, `application/grpc-web` → `None`.
fn strip_family<'a>(media: &'a str, family: &str) -> Option<&'a str> {
    let rest = media.strip_prefix(family)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('+')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    struct Case {
        method: Method,
        path: &'static str,
        content_type: Option<&'static str>,
        preflight: bool,
        want: Protocol,
    }

    fn case(method: Method, path: &'static str, ct: Option<&'static str>, want: Protocol) -> Case {
        Case {
            method,
            path,
            content_type: ct,
            preflight: false,
            want,
        }
    }

    #[test]
    fn detect_table() {
        let methods = MethodIndex::new(&crate::testutil::pool());
        let echo = "/example.v1.EchoService/Echo";
        let cases = vec![
            case(Method::POST, echo, Some("application/grpc"), Protocol::Grpc),
            case(
                Method::POST,
                echo,
                Some("application/grpc+proto"),
                Protocol::Grpc,
            ),
            case(
                Method::POST,
                echo,
                Some("application/grpc+json"),
                Protocol::Grpc,
            ),
            case(
                Method::POST,
                "/x/Y",
                Some("application/grpc"),
                Protocol::Grpc,
            ),
            case(
                Method::POST,
                echo,
                Some("application/grpc-web"),
                Protocol::GrpcWeb { text: false },
            ),
            case(
                Method::POST,
                echo,
                Some("application/grpc-web+proto"),
                Protocol::GrpcWeb { text: false },
            ),
            case(
                Method::POST,
                echo,
                Some("application/grpc-web-text"),
                Protocol::GrpcWeb { text: true },
            ),
            case(
                Method::POST,
                echo,
                Some("Application/GRPC-Web-Text+proto; charset=x"),
                Protocol::GrpcWeb { text: true },
            ),
            case(
                Method::POST,
                echo,
                Some("application/json"),
                Protocol::Connect { codec: Codec::Json },
            ),
            case(
                Method::POST,
                echo,
                Some("application/json; charset=utf-8"),
                Protocol::Connect { codec: Codec::Json },
            ),
            case(
                Method::POST,
                echo,
                Some("application/proto"),
                Protocol::Connect {
                    codec: Codec::Proto,
                },
            ),
            case(
                Method::POST,
                echo,
                Some("text/plain"),
                Protocol::ConnectUnsupportedMedia,
            ),
            case(
                Method::POST,
                echo,
                Some("application/connect+json"),
                Protocol::ConnectStreaming { codec: Codec::Json },
            ),
            case(
                Method::POST,
                echo,
                Some("application/connect+proto"),
                Protocol::ConnectStreaming {
                    codec: Codec::Proto,
                },
            ),
            // Unknown method path: REST decides (and most likely answers 404).
            case(
                Method::POST,
                "/example.v1.EchoService/Nope",
                Some("application/json"),
                Protocol::Rest,
            ),
            case(Method::GET, echo, None, Protocol::ConnectGet),
            case(
                Method::GET,
                echo,
                Some("application/json"),
                Protocol::ConnectGet,
            ),
            case(
                Method::GET,
                "/example.v1.EchoService/Nope",
                None,
                Protocol::Rest,
            ),
            case(Method::GET, "/v1/echo/abc", None, Protocol::Rest),
            case(
                Method::POST,
                "/v1/echo",
                Some("application/json"),
                Protocol::Rest,
            ),
            case(Method::OPTIONS, "/v1/echo", None, Protocol::Rest),
            case(
                Method::POST,
                "/v1/echo",
                Some("application/grpc-webx"),
                Protocol::Rest,
            ),
            case(
                Method::POST,
                "/v1/echo",
                Some("application/grpc-web+json"),
                Protocol::GrpcWeb { text: false },
            ),
            case(
                Method::POST,
                echo,
                Some("application/grpc-web-text+json"),
                Protocol::GrpcWeb { text: true },
            ),
            Case {
                method: Method::OPTIONS,
                path: echo,
                content_type: None,
                preflight: true,
                want: Protocol::Preflight,
            },
        ];
        for c in cases {
            let mut headers = HeaderMap::new();
            if let Some(ct) = c.content_type {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            if c.preflight {
                headers.insert(
                    header::ACCESS_CONTROL_REQUEST_METHOD,
                    HeaderValue::from_static("POST"),
                );
            }
            let got = detect(&c.method, c.path, &headers, &methods);
            assert_eq!(got, c.want, "{} {} {:?}", c.method, c.path, c.content_type);
        }
    }

    #[test]
    fn non_ascii_content_type_is_unsupported() {
        let methods = MethodIndex::new(&crate::testutil::pool());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/\xffjson")
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(
            detect(
                &Method::POST,
                "/example.v1.EchoService/Echo",
                &headers,
                &methods
            ),
            Protocol::ConnectUnsupportedMedia
        );
    }
}
