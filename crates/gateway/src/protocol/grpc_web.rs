//! gRPC-Web, binary and text (base64), over HTTP/1.1 or HTTP/2.
//!
//! The framing work (request text decoding, response frames, trailers as the final frame
//! with flag `0x80`, text-mode base64) is tonic-web's `GrpcWebService`, placed around the
//! inner service for this one request. Before tonic-web sees the answer, a trailers-only
//! gRPC response (status in the headers, no body) is rewritten so the status travels as
//! trailers: every gRPC-Web client then finds it in the trailer frame. CORS is left to
//! `crate::cors`.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use http_body_util::StreamBody;
use tower::{Layer as _, Service, ServiceExt};

use crate::BoxError;
use crate::protocol::grpc;

/// The headers that make up a gRPC status.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Serves one gRPC-Web request through tonic-web around `service`; `text` is the request's
/// mode as detected.
pub(crate) async fn serve<S, B, ReqB>(
    service: S,
    text: bool,
    mut request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    let inner = tower::service_fn(move |request: Request<tonic::body::Body>| {
        let service = service.clone();
        async move {
            let response = grpc::serve(service, request).await;
            Ok::<_, Infallible>(trailers_only_as_trailers(response))
        }
    });
    normalize_headers(request.headers_mut(), text);
    let web = tonic_web::GrpcWebLayer::new().layer(inner);
    match web.oneshot(request.map(tonic::body::Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// tonic-web matches `content-type` and `accept` exactly; give it the canonical spellings
/// of what `crate::detect` recognised (any case, parameters allowed). The response is text
/// when the client accepts text, or accepts no gRPC-Web type and sent text.
fn normalize_headers(headers: &mut HeaderMap, text: bool) {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let text_reply = if accept.contains("application/grpc-web-text") {
        true
    } else if accept.contains("application/grpc-web") {
        false
    } else {
        text
    };
    let canonical = |text| {
        HeaderValue::from_static(if text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        })
    };
    headers.insert(header::CONTENT_TYPE, canonical(text));
    headers.insert(header::ACCEPT, canonical(text_reply));
}

/// Moves the status of a trailers-only response from its headers into a trailers frame.
pub(crate) fn trailers_only_as_trailers(
    mut response: Response<tonic::body::Body>,
) -> Response<tonic::body::Body> {
    if !response.headers().contains_key(STATUS_HEADERS[0]) {
        return response;
    }
    let mut trailers = HeaderMap::new();
    for name in STATUS_HEADERS {
        if let Some(value) = response.headers_mut().remove(name) {
            trailers.insert(name, value);
        }
    }
    let frames = stream::iter([Ok::<_, Infallible>(Frame::trailers(trailers))]);
    let (parts, _empty) = response.into_parts();
    Response::from_parts(parts, tonic::body::Body::new(StreamBody::new(frames)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use http_body_util::BodyExt;
    use tonic::{Code, Status};

    /// An inner gRPC service that answers `reply` (a trailers-only error when `Err`).
    fn inner(
        reply: Result<&'static [u8], Status>,
    ) -> impl Service<
        Request<tonic::body::Body>,
        Response = Response<tonic::body::Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<tonic::body::Body>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |_req: Request<tonic::body::Body>| {
            let reply = reply.clone();
            async move {
                Ok::<_, Infallible>(match reply {
                    Err(status) => status.into_http(),
                    Ok(message) => {
                        let mut frame = vec![0, 0, 0, 0, u8::try_from(message.len()).unwrap_or(0)];
                        frame.extend_from_slice(message);
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        let frames = stream::iter([
                            Ok::<_, Infallible>(Frame::data(Bytes::from(frame))),
                            Ok(Frame::trailers(trailers)),
                        ]);
                        let mut r = Response::new(tonic::body::Body::new(StreamBody::new(frames)));
                        r.headers_mut()
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                        r
                    }
                })
            }
        })
    }

    fn request(content_type: &'static str, body: Bytes) -> Request<http_body_util::Full<Bytes>> {
        let mut request = Request::new(http_body_util::Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static("/example.v1.EchoService/Echo");
        request
            .headers_mut()
            .insert("content-type", HeaderValue::from_static(content_type));
        request
    }

    async fn body_bytes(response: Response<tonic::body::Body>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn binary_response_ends_with_trailer_frame() {
        let response = serve(
            inner(Ok(b"hi")),
            false,
            request(
                "application/grpc-web+proto",
                Bytes::from_static(b"\0\0\0\0\0"),
            ),
        )
        .await;
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/grpc-web+proto"[..])
        );
        let body = body_bytes(response).await;
        assert_eq!(&body[..7], b"\x00\x00\x00\x00\x02hi");
        assert_eq!(body[7], 0x80, "trailer frame flag");
        let len = u32::from_be_bytes([body[8], body[9], body[10], body[11]]) as usize;
        assert_eq!(&body[12..], b"grpc-status:0\r\n");
        assert_eq!(len, body.len() - 12);
    }

    #[tokio::test]
    async fn trailers_only_error_becomes_trailer_frame() {
        let status = Status::new(Code::FailedPrecondition, "locked");
        let response = serve(
            inner(Err(status)),
            false,
            request("application/grpc-web", Bytes::from_static(b"\0\0\0\0\0")),
        )
        .await;
        assert!(!response.headers().contains_key("grpc-status"));
        let body = body_bytes(response).await;
        assert_eq!(body.first(), Some(&0x80));
        let text = String::from_utf8_lossy(&body[5..]).to_string();
        assert!(text.contains("grpc-status:9\r\n"), "{text}");
        assert!(text.contains("grpc-message:locked\r\n"), "{text}");
    }

    #[tokio::test]
    async fn text_mode_is_base64_both_ways() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(b"\0\0\0\0\0");
        let response = serve(
            inner(Ok(b"hi")),
            true,
            request(
                "Application/grpc-web-text; charset=utf-8",
                Bytes::from(encoded),
            ),
        )
        .await;
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/grpc-web-text+proto"[..])
        );
        let body = body_bytes(response).await;
        // Each chunk is base64 on its own (padded); 4-character groups decode independently.
        let decoded: Vec<u8> = body
            .chunks(4)
            .filter_map(|group| base64::engine::general_purpose::STANDARD.decode(group).ok())
            .flatten()
            .collect();
        assert_eq!(&decoded[..7], b"\x00\x00\x00\x00\x02hi");
        assert_eq!(decoded[7], 0x80);
    }
}
