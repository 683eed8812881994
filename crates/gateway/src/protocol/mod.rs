//! The shared contract of the protocol modules: one module per protocol, named from the
//! client's side (`decode_request`, `encode_response`, `encode_error`), plus the helpers they
//! all use: bounded body reading, the header → metadata filter, plain responses.
//!
//! Picking the protocol is `crate::detect`'s job; running the unary gRPC call is
//! `crate::dispatch`'s.

pub(crate) mod connect;
pub(crate) mod connect_stream;
pub(crate) mod grpc;
pub(crate) mod grpc_web;
pub(crate) mod rest;
pub(crate) mod rest_stream;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use tonic::Status;

use crate::BoxError;

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
