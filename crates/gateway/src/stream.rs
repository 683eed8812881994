//! Streaming calls shared by REST (server streaming as NDJSON or SSE) and Connect streaming:
//! length-prefixed frames read incrementally from a body, and a call whose response messages
//! are handed on one by one as they arrive, never buffered as a whole stream.
//!
//! Rendering the messages belongs to the protocol modules; unary calls stay in
//! `crate::dispatch`.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _, stream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use tokio::time::Instant;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use crate::BoxError;
use crate::dispatch::status_from_headers;

/// One item read from an enveloped body.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A message frame: its flag byte and payload.
    Message {
        /// The flag byte (bit 0: compressed; Connect bit 1: end of stream).
        flag: u8,
        /// The payload.
        data: Bytes,
    },
    /// HTTP trailers that ended the body.
    Trailers(HeaderMap),
}

/// A boxed stream of envelopes.
pub(crate) type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

/// Reads `body` as 5-byte-prefixed envelopes, each at most `max` bytes, until it ends.
pub(crate) fn envelopes<B>(body: B, max: usize, deadline: Option<Instant>) -> EnvelopeStream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    struct State<B> {
        body: Pin<Box<B>>,
        buf: BytesMut,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        buf: BytesMut::new(),
        done: false,
    };
    Box::pin(stream::unfold(state, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if st.buf.len() >= 5 {
                let flag = st.buf.first().copied().unwrap_or(0);
                let len = st
                    .buf
                    .get(1..5)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(usize::MAX, |b| {
                        usize::try_from(u32::from_be_bytes(b)).unwrap_or(usize::MAX)
                    });
                if len > max {
                    st.done = true;
                    let status = Status::resource_exhausted(format!(
                        "message of {len} bytes exceeds the limit of {max} bytes"
                    ));
                    return Some((Err(status), st));
                }
                if st.buf.len() >= 5 + len {
                    st.buf.advance(5);
                    let data = st.buf.split_to(len).freeze();
                    return Some((Ok(Envelope::Message { flag, data }), st));
                }
            }
            let next = std::future::poll_fn(|cx| st.body.as_mut().poll_frame(cx));
            let frame = match deadline {
                Some(at) => match tokio::time::timeout_at(at, next).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        st.done = true;
                        return Some((Err(Status::deadline_exceeded("deadline exceeded")), st));
                    }
                },
                None => next.await,
            };
            match frame {
                None => {
                    st.done = true;
                    if !st.buf.is_empty() {
                        return Some((Err(Status::internal("truncated message frame")), st));
                    }
                    return None;
                }
                Some(Err(e)) => {
                    st.done = true;
                    let err: BoxError = e.into();
                    return Some((Err(Status::from_error(err)), st));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => st.buf.extend_from_slice(&chunk),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            st.done = true;
                            return Some((Ok(Envelope::Trailers(trailers)), st));
                        }
                    }
                },
            }
        }
    }))
}

/// What a streaming call yields after its response headers.
#[derive(Debug)]
pub(crate) enum Item {
    /// One response message (unframed).
    Message(Bytes),
    /// The end: the final status (OK or not) and the trailers other than `grpc-*`.
    End(Status, HeaderMap),
}

/// A streaming call's answer: response headers, then items as they arrive.
pub(crate) struct StreamReply {
    /// Response headers (response metadata), `content-type` removed.
    pub(crate) headers: HeaderMap,
    /// Messages, then exactly one [`Item::End`].
    pub(crate) items: Pin<Box<dyn Stream<Item = Item> + Send>>,
}

/// A streaming call to the inner gRPC service: `body` is already gRPC-framed.
pub(crate) struct StreamCall {
    /// `/pkg.Service/Method`.
    pub(crate) path: String,
    /// Request metadata.
    pub(crate) metadata: HeaderMap,
    /// The framed request messages.
    pub(crate) body: tonic::body::Body,
    /// The client's deadline.
    pub(crate) timeout: Option<Duration>,
}

/// Calls `service` and hands its messages on as they arrive.
///
/// # Errors
///
/// The status of a trailers-only or non-200 answer, or DEADLINE_EXCEEDED before the headers.
pub(crate) async fn call<S, B>(
    service: S,
    call: StreamCall,
    max_message_bytes: usize,
) -> Result<StreamReply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let deadline = call.timeout.map(|t| Instant::now() + t);
    let mut request = Request::new(call.body);
    *request.method_mut() = Method::POST;
    *request.version_mut() = Version::HTTP_2;
    *request.uri_mut() = call
        .path
        .parse()
        .map_err(|_| Status::invalid_argument(format!("invalid method path {:?}", call.path)))?;
    let headers = request.headers_mut();
    *headers = call.metadata;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = call.timeout {
        headers.insert("grpc-timeout", crate::dispatch::grpc_timeout(timeout));
    }
    let pending = service.oneshot(request);
    let response = match deadline {
        Some(at) => tokio::time::timeout_at(at, pending)
            .await
            .map_err(|_| Status::deadline_exceeded("deadline exceeded"))?,
        None => pending.await,
    }
    .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        let code = switchyard_transcode::status::code_from_http_status(parts.status);
        return Err(Status::new(
            code,
            format!("upstream answered HTTP {}", parts.status),
        ));
    }
    if parts.headers.contains_key("grpc-status") {
        let status = status_from_headers(&parts.headers)
            .unwrap_or_else(|| Status::internal("unreadable grpc-status"));
        if status.code() != Code::Ok {
            return Err(status);
        }
        let mut headers = parts.headers;
        headers.remove(header::CONTENT_TYPE);
        let end = stream::iter([Item::End(status, HeaderMap::new())]);
        return Ok(StreamReply {
            headers,
            items: Box::pin(end),
        });
    }
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_TYPE);
    let frames = envelopes(body, max_message_bytes, deadline);
    let items = stream::unfold(Some(frames), |state| async move {
        let mut frames = state?;
        let item = match frames.next().await {
            Some(Ok(Envelope::Message { flag: 0, data })) => {
                return Some((Item::Message(data), Some(frames)));
            }
            Some(Ok(Envelope::Message { flag, .. })) => Item::End(
                Status::internal(format!("unexpected gRPC frame flag {flag:#04x}")),
                HeaderMap::new(),
            ),
            Some(Ok(Envelope::Trailers(trailers))) => {
                let status = status_from_headers(&trailers)
                    .unwrap_or_else(|| Status::internal("stream ended without grpc-status"));
                let mut rest = trailers;
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    rest.remove(name);
                }
                Item::End(status, rest)
            }
            Some(Err(status)) => Item::End(status, HeaderMap::new()),
            None => Item::End(
                Status::internal("stream ended without grpc-status"),
                HeaderMap::new(),
            ),
        };
        Some((item, None))
    });
    Ok(StreamReply {
        headers,
        items: Box::pin(items),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use std::convert::Infallible;

    fn body(chunks: Vec<&'static [u8]>, trailers: Option<HeaderMap>) -> tonic::body::Body {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        if let Some(t) = trailers {
            frames.push(Ok(Frame::trailers(t)));
        }
        tonic::body::Body::new(StreamBody::new(stream::iter(frames)))
    }

    #[tokio::test]
    async fn envelopes_split_across_chunks() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let b = body(
            vec![b"\x00\x00\x00", b"\x00\x02hi\x02\x00\x00\x00\x00"],
            Some(trailers),
        );
        let got: Vec<String> = envelopes(b, 16, None)
            .map(|e| match e {
                Ok(Envelope::Message { flag, data }) => format!("{flag}:{data:?}"),
                Ok(Envelope::Trailers(t)) => format!("trailers {}", t.len()),
                Err(s) => format!("err {:?}", s.code()),
            })
            .collect()
            .await;
        assert_eq!(got, ["0:b\"hi\"", "2:b\"\"", "trailers 1"]);
    }

    #[tokio::test]
    async fn envelope_errors() {
        let cases: [(Vec<&'static [u8]>, Code); 2] = [
            (vec![b"\x00\x00\x00\x00\x05ab"], Code::Internal),
            (vec![b"\x00\x00\x00\x01\x00"], Code::ResourceExhausted),
        ];
        for (chunks, code) in cases {
            let got: Vec<_> = envelopes(body(chunks, None), 16, None).collect().await;
            assert_eq!(
                got.last().and_then(|r| r.as_ref().err()).map(Status::code),
                Some(code)
            );
        }
    }
}
