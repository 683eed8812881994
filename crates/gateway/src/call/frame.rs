//! The one length-prefixed framing every protocol of the gRPC family shares: a flag byte, a
//! 4-byte big-endian length, the message. gRPC and gRPC-Web carry messages in it (gRPC-Web
//! adds the `0x80` trailer frame), Connect streaming calls it an envelope (bit 1 marks its
//! end-of-stream message).
//!
//! [`encode_frame`] writes one frame, [`parse_single_frame`] reads the one frame of a unary
//! body, [`envelopes`] reads frames incrementally from a streamed body. What a flag means to a
//! protocol is that protocol module's business.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, stream};
use http::HeaderMap;
use tokio::time::Instant;
use tonic::Status;

use super::compression::{self, Encoding};
use crate::BoxError;

/// Length of a frame header: 1 flag byte and a 4-byte big-endian length.
pub(crate) const FRAME_HEADER_LEN: usize = 5;
/// Flag bit 0: the message is compressed with the call's `grpc-encoding`.
pub(crate) const FLAG_COMPRESSED: u8 = 0x01;

/// Which side of the call a frame came from: it decides whose fault a malformed frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Sent by the client: a malformed frame is its INVALID_ARGUMENT.
    Request,
    /// Sent by the handler or upstream: a malformed frame is INTERNAL.
    Response,
}

impl Side {
    /// The status of a malformed message from this side.
    pub(crate) fn malformed(self, message: impl Into<String>) -> Status {
        match self {
            Side::Request => Status::invalid_argument(message),
            Side::Response => Status::internal(message),
        }
    }

    /// `request` or `response`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// RESOURCE_EXHAUSTED for a message above the limit, naming it.
pub(crate) fn too_large(side: Side, got: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "{} message of {got} bytes exceeds the limit of {max} bytes",
        side.name()
    ))
}

/// Wraps a message in a frame with `flag`.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED when the message does not fit the 32-bit length prefix.
pub(crate) fn encode_frame(flag: u8, message: &[u8]) -> Result<Bytes, Status> {
    let len = u32::try_from(message.len())
        .map_err(|_| Status::resource_exhausted("message larger than 4 GiB"))?;
    let mut frame = BytesMut::with_capacity(FRAME_HEADER_LEN + message.len());
    frame.extend_from_slice(&[flag]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    Ok(frame.freeze())
}

/// Parses exactly one message frame filling `data`; a compressed one (flag bit 0) is inflated
/// with the call's `encoding`, at most `max` bytes.
///
/// # Errors
///
/// For `side`'s malformed code (INVALID_ARGUMENT from a client, INTERNAL from a handler): a
/// missing, truncated or repeated frame, an unknown flag, a compressed frame without an
/// encoding or not in it; RESOURCE_EXHAUSTED for a message above `max`, before or after
/// inflating.
pub(crate) fn parse_single_frame(
    mut data: Bytes,
    max: usize,
    side: Side,
    encoding: Encoding,
) -> Result<Bytes, Status> {
    if data.is_empty() {
        return Err(side.malformed(format!("the {} carried no message", side.name())));
    }
    if data.len() < FRAME_HEADER_LEN {
        return Err(side.malformed("truncated message frame header"));
    }
    let flag = data.get_u8();
    let len = usize::try_from(data.get_u32()).unwrap_or(usize::MAX);
    if flag & !FLAG_COMPRESSED != 0 {
        return Err(side.malformed(format!("unknown message frame flag {flag:#04x}")));
    }
    if len > max {
        return Err(too_large(side, len, max));
    }
    if data.len() < len {
        return Err(side.malformed("truncated message frame"));
    }
    if data.len() > len {
        return Err(side.malformed(format!("more than one message in a unary {}", side.name())));
    }
    compression::decode_payload(flag, data, encoding, max, side)
}

/// One item read from a framed body.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A message frame: its flag byte and payload.
    Message {
        /// The flag byte (bit 0: compressed; Connect bit 1: end of stream; gRPC-Web bit 7:
        /// trailers).
        flag: u8,
        /// The payload.
        data: Bytes,
    },
    /// HTTP trailers that ended the body.
    Trailers(HeaderMap),
}

/// The status of a response body that broke off. A stream the upstream reset keeps the code
/// of its RST_STREAM reason (tonic's table: INTERNAL_ERROR is INTERNAL, REFUSED_STREAM is
/// UNAVAILABLE, …); one whose connection was lost, which tonic can only call UNKNOWN, is
/// UNAVAILABLE, as gRPC names a transport failure.
pub(crate) fn response_body_error(err: BoxError) -> Status {
    let status = Status::from_error(err);
    if status.code() == tonic::Code::Unknown {
        return Status::unavailable(format!("upstream connection lost: {}", status.message()));
    }
    status
}

/// A boxed stream of envelopes.
pub(crate) type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

/// Reads `body` as frames, each at most `max` bytes, until it ends; after `deadline` the
/// stream ends with DEADLINE_EXCEEDED. A frame's payload is handed on as soon as it is whole.
pub(crate) fn envelopes<B>(
    body: B,
    max: usize,
    side: Side,
    deadline: Option<Instant>,
) -> EnvelopeStream
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
            if st.buf.len() >= FRAME_HEADER_LEN {
                let flag = st.buf.first().copied().unwrap_or(0);
                let len = st
                    .buf
                    .get(1..FRAME_HEADER_LEN)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(usize::MAX, |b| {
                        usize::try_from(u32::from_be_bytes(b)).unwrap_or(usize::MAX)
                    });
                if len > max {
                    st.done = true;
                    return Some((Err(too_large(side, len, max)), st));
                }
                if st.buf.len() >= FRAME_HEADER_LEN + len {
                    st.buf.advance(FRAME_HEADER_LEN);
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
                        return Some((Err(side.malformed("truncated message frame")), st));
                    }
                    return None;
                }
                Some(Err(e)) => {
                    st.done = true;
                    let err: BoxError = e.into();
                    let status = match side {
                        // A client whose body cannot be read has gone or sent garbage.
                        Side::Request => {
                            Status::cancelled(format!("cannot read the request: {err}"))
                        }
                        Side::Response => response_body_error(err),
                    };
                    return Some((Err(status), st));
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use http::HeaderValue;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use std::convert::Infallible;
    use tonic::Code;

    struct Case {
        name: &'static str,
        input: &'static [u8],
        want: Result<&'static [u8], Code>,
    }

    #[test]
    fn parse_single_frame_table() {
        let cases = [
            Case {
                name: "one message",
                input: b"\x00\x00\x00\x00\x03abc",
                want: Ok(b"abc"),
            },
            Case {
                name: "empty message",
                input: b"\x00\x00\x00\x00\x00",
                want: Ok(b""),
            },
            Case {
                name: "no frame",
                input: b"",
                want: Err(Code::Internal),
            },
            Case {
                name: "short header",
                input: b"\x00\x00\x00",
                want: Err(Code::Internal),
            },
            Case {
                name: "truncated message",
                input: b"\x00\x00\x00\x00\x05ab",
                want: Err(Code::Internal),
            },
            Case {
                name: "two messages",
                input: b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x01b",
                want: Err(Code::Internal),
            },
            Case {
                name: "compressed without an encoding",
                input: b"\x01\x00\x00\x00\x01a",
                want: Err(Code::Internal),
            },
            Case {
                name: "trailer flag",
                input: b"\x80\x00\x00\x00\x01a",
                want: Err(Code::Internal),
            },
            Case {
                name: "over the limit",
                input: b"\x00\x00\x00\x00\x20",
                want: Err(Code::ResourceExhausted),
            },
            Case {
                name: "huge length",
                input: b"\x00\xff\xff\xff\xff",
                want: Err(Code::ResourceExhausted),
            },
        ];
        for c in cases {
            let got = parse_single_frame(
                Bytes::from_static(c.input),
                16,
                Side::Response,
                Encoding::Identity,
            );
            match (got, c.want) {
                (Ok(msg), Ok(want)) => assert_eq!(&msg[..], want, "{}", c.name),
                (Err(status), Err(code)) => assert_eq!(status.code(), code, "{}", c.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn malformed_request_frames_are_the_clients_fault() {
        let got = parse_single_frame(
            Bytes::from_static(b"\x00\x00\x00\x00\x05ab"),
            16,
            Side::Request,
            Encoding::Identity,
        );
        assert_eq!(got.err().map(|s| s.code()), Some(Code::InvalidArgument));
    }

    #[test]
    fn encode_frame_prefixes_length() {
        let frame = encode_frame(0, b"hi").ok();
        assert_eq!(frame.as_deref(), Some(&b"\x00\x00\x00\x00\x02hi"[..]));
    }

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
        let got: Vec<String> = envelopes(b, 16, Side::Response, None)
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
        let cases: [(Vec<&'static [u8]>, Side, Code); 3] = [
            (
                vec![b"\x00\x00\x00\x00\x05ab"],
                Side::Response,
                Code::Internal,
            ),
            (
                vec![b"\x00\x00\x00\x00\x05ab"],
                Side::Request,
                Code::InvalidArgument,
            ),
            (
                vec![b"\x00\x00\x00\x01\x00"],
                Side::Request,
                Code::ResourceExhausted,
            ),
        ];
        for (chunks, side, code) in cases {
            let got: Vec<_> = envelopes(body(chunks, None), 16, side, None)
                .collect()
                .await;
            assert_eq!(
                got.last().and_then(|r| r.as_ref().err()).map(Status::code),
                Some(code)
            );
        }
    }
}
