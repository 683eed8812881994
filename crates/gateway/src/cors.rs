//! CORS for browser callers (gRPC-Web, Connect, REST): answers preflights and adds the
//! `access-control-*` headers to actual responses.
//!
//! Which origins, headers and exposed headers are allowed is configuration
//! ([`CorsOptions`]); recognising a preflight is `crate::detect`'s job.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::gateway::CorsOptions;
use crate::protocol::full_response;

/// Methods a browser may use; every protocol on the port uses one of them.
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// The `access-control-allow-origin` value for `origin`, or `None` when it is not allowed.
fn allowed_origin(opts: &CorsOptions, origin: &HeaderValue) -> Option<HeaderValue> {
    if opts.allowed_origins.is_empty()
        || opts
            .allowed_origins
            .iter()
            .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        Some(origin.clone())
    } else {
        None
    }
}

fn joined(list: &[String]) -> Option<HeaderValue> {
    HeaderValue::from_str(&list.join(", ")).ok()
}

/// Answers a preflight: 204 with the allowed methods and headers, or 403 when the origin is
/// not allowed.
pub(crate) fn preflight(opts: &CorsOptions, headers: &HeaderMap) -> Response<tonic::body::Body> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|origin| allowed_origin(opts, origin));
    let Some(origin) = origin else {
        return full_response(StatusCode::FORBIDDEN, "text/plain", "origin not allowed");
    };
    let mut response = full_response(StatusCode::NO_CONTENT, "text/plain", "");
    let out = response.headers_mut();
    out.remove(header::CONTENT_TYPE);
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    if let Some(allowed) = joined(&opts.allowed_headers) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(opts.max_age.as_secs()),
    );
    out.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// Adds CORS headers to an actual (non-preflight) response when the request came with an
/// allowed `origin`.
pub(crate) fn decorate<B>(
    opts: &CorsOptions,
    origin: Option<&HeaderValue>,
    response: &mut Response<B>,
) {
    let Some(origin) = origin.and_then(|origin| allowed_origin(opts, origin)) else {
        return;
    };
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Some(exposed) = joined(&opts.exposed_headers) {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
    }
    out.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn preflight_any_origin() {
        let opts = CorsOptions::default();
        let response = preflight(
            &opts,
            &headers(&[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ]),
        );
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let h = response.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap_or_default();
        for name in [
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "authorization",
            "content-type",
            "connect-protocol-version",
            "x-zitadel-orgid",
            "content-encoding",
            "connect-content-encoding",
            "connect-accept-encoding",
            "grpc-encoding",
            "grpc-accept-encoding",
        ] {
            assert!(allowed.contains(name), "{name} not in {allowed}");
        }
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "7200");
    }

    #[test]
    fn preflight_listed_origins_only() {
        let opts = CorsOptions {
            allowed_origins: vec!["https://ok.example".into()],
            ..CorsOptions::default()
        };
        let ok = preflight(&opts, &headers(&[("origin", "https://ok.example")]));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let denied = preflight(&opts, &headers(&[("origin", "https://evil.example")]));
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        let missing = preflight(&opts, &headers(&[]));
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn decorate_exposes_status_and_encoding_headers() {
        let opts = CorsOptions::default();
        let mut response = Response::new(());
        let origin = HeaderValue::from_static("https://app.example");
        decorate(&opts, Some(&origin), &mut response);
        let exposed = response.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap_or_default();
        for name in [
            "grpc-status",
            "grpc-status-details-bin",
            "content-encoding",
            "connect-content-encoding",
            "grpc-encoding",
        ] {
            assert!(exposed.contains(name), "{name} not in {exposed}");
        }
        let mut untouched = Response::new(());
        decorate(&opts, None, &mut untouched);
        assert!(untouched.headers().is_empty());
    }
}
