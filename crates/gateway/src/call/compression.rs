//! Message compression, the same for every protocol: which encodings we read and write
//! ([`Encoding`]: `gzip` and `identity`), what a client accepts (its `grpc-accept-encoding`,
//! `connect-accept-encoding` or `Accept-Encoding` list), and the two directions — [`inflate`]
//! held to the message limit while it inflates, [`deflate`] only for a message large enough to
//! be worth it.
//!
//! Which header names the encoding is each protocol module's business; flate2 does the work.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use http::HeaderMap;
use tonic::Status;

use super::frame::{FLAG_COMPRESSED, Side, too_large};

/// A message smaller than this is sent as it is: gzip's header and trailer (18 bytes) and the
/// CPU are not worth it (connect-go's `WithCompressMinBytes`, same idea).
pub(crate) const COMPRESS_MIN_BYTES: usize = 1024;

/// What we read and write, for a `*-accept-encoding` header (preferred first).
pub(crate) const ACCEPTED: &str = "gzip, identity";

/// A content coding of a message or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Encoding {
    /// Not compressed.
    #[default]
    Identity,
    /// gzip (RFC 1952).
    Gzip,
}

impl Encoding {
    /// The encoding a request names in `header` (absent: identity).
    ///
    /// # Errors
    ///
    /// UNIMPLEMENTED naming the header, its value and what we take, as gRPC
    /// (<https://github.com/grpc/grpc/blob/master/doc/compression.md>) and Connect ask.
    pub(crate) fn from_header(headers: &HeaderMap, header: &str) -> Result<Self, Status> {
        let Some(value) = headers.get(header) else {
            return Ok(Self::Identity);
        };
        let name = value.as_bytes().trim_ascii();
        Self::parse(name).ok_or_else(|| {
            Status::unimplemented(format!(
                "{header} {:?} is not supported; supported encodings are {ACCEPTED}",
                String::from_utf8_lossy(name)
            ))
        })
    }

    /// `gzip` or `identity`, any case.
    pub(crate) fn parse(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"gzip") {
            Some(Self::Gzip)
        } else if name.eq_ignore_ascii_case(b"identity") {
            Some(Self::Identity)
        } else {
            None
        }
    }

    /// Its name on the wire.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
        }
    }

    /// What to compress an answer with: the request's own encoding if it used one (as grpc-go
    /// and connect-go do), else gzip when the client lists it in `accept` (a comma-separated
    /// list; `;q=0` refuses a coding, RFC 9110 §12.5.3), else identity.
    pub(crate) fn for_response(self, headers: &HeaderMap, accept: &str) -> Self {
        if self != Self::Identity {
            return self;
        }
        if accepts_gzip(headers, accept) {
            Self::Gzip
        } else {
            Self::Identity
        }
    }
}

/// Whether the `accept` header(s) list gzip (or `*`) with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap, accept: &str) -> bool {
    headers
        .get_all(accept)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused && (coding.eq_ignore_ascii_case("gzip") || coding == "*")
        })
}

/// Inflates `data` compressed with `encoding`, refusing (without inflating further) more than
/// `limit` bytes of output: a small bomb never grows past the limit in memory.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED above `limit`; `side`'s malformed code (INVALID_ARGUMENT from a client,
/// INTERNAL from a handler) for data that is not what `encoding` says.
pub(crate) fn inflate(
    encoding: Encoding,
    data: Bytes,
    limit: usize,
    side: Side,
) -> Result<Bytes, Status> {
    match encoding {
        Encoding::Identity => {
            if data.len() > limit {
                return Err(too_large(side, data.len(), limit));
            }
            Ok(data)
        }
        Encoding::Gzip => {
            let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
            MultiGzDecoder::new(&data[..])
                .take(most)
                .read_to_end(&mut out)
                .map_err(|e| {
                    side.malformed(format!("the {} is not valid gzip: {e}", side.name()))
                })?;
            if out.len() > limit {
                return Err(Status::resource_exhausted(format!(
                    "{} message inflates past the limit of {limit} bytes",
                    side.name()
                )));
            }
            Ok(Bytes::from(out))
        }
    }
}

/// `message` compressed with `encoding` when that is worth it: the flag of its frame
/// ([`FLAG_COMPRESSED`] or 0) and the payload.
///
/// # Errors
///
/// INTERNAL if the compressor fails (it writes to memory, so it does not).
pub(crate) fn deflate(encoding: Encoding, message: Bytes) -> Result<(u8, Bytes), Status> {
    if encoding == Encoding::Identity || message.len() < COMPRESS_MIN_BYTES {
        return Ok((0, message));
    }
    Ok((FLAG_COMPRESSED, gzip(&message)?))
}

/// `data` gzipped.
///
/// # Errors
///
/// INTERNAL if the compressor fails.
pub(crate) fn gzip(data: &[u8]) -> Result<Bytes, Status> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 32),
        Compression::default(),
    );
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| Status::internal(format!("gzip failed: {e}")))
}

/// The payload of one frame as it was before compression: a frame with [`FLAG_COMPRESSED`]
/// is inflated with the call's `encoding`, at most `limit` bytes.
///
/// # Errors
///
/// As [`inflate`]; `side`'s malformed code for a compressed frame in a call whose encoding is
/// identity (gRPC's spec calls that a protocol error).
pub(crate) fn decode_payload(
    flag: u8,
    data: Bytes,
    encoding: Encoding,
    limit: usize,
    side: Side,
) -> Result<Bytes, Status> {
    if flag & FLAG_COMPRESSED == 0 {
        return Ok(data);
    }
    if encoding == Encoding::Identity {
        return Err(side.malformed(
            "a compressed message in a call without a message encoding (send grpc-encoding, \
             connect-content-encoding)",
        ));
    }
    inflate(encoding, data, limit, side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tonic::Code;

    #[test]
    fn encoding_from_header() {
        let cases = [
            (None, Ok(Encoding::Identity)),
            (Some("identity"), Ok(Encoding::Identity)),
            (Some("GZIP"), Ok(Encoding::Gzip)),
            (Some(" gzip "), Ok(Encoding::Gzip)),
            (Some("br"), Err(Code::Unimplemented)),
            (Some("gzip, br"), Err(Code::Unimplemented)),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert("grpc-encoding", HeaderValue::from_static(v));
            }
            let got = Encoding::from_header(&headers, "grpc-encoding").map_err(|s| s.code());
            assert_eq!(got, want, "{value:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("grpc-encoding", HeaderValue::from_static("snappy"));
        let message = Encoding::from_header(&headers, "grpc-encoding")
            .err()
            .map(|s| s.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some(
                "grpc-encoding \"snappy\" is not supported; supported encodings are gzip, identity"
            )
        );
    }

    #[test]
    fn response_encoding_follows_request_then_accept() {
        let cases = [
            (Encoding::Gzip, None, Encoding::Gzip),
            (Encoding::Identity, None, Encoding::Identity),
            (Encoding::Identity, Some("gzip"), Encoding::Gzip),
            (Encoding::Identity, Some("br, GZip"), Encoding::Gzip),
            (Encoding::Identity, Some("gzip;q=0, br"), Encoding::Identity),
            (Encoding::Identity, Some("gzip; q=0.5"), Encoding::Gzip),
            (Encoding::Identity, Some("*"), Encoding::Gzip),
            (Encoding::Identity, Some("identity"), Encoding::Identity),
            (Encoding::Identity, Some("deflate"), Encoding::Identity),
        ];
        for (request, accept, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = accept {
                headers.insert("accept-encoding", HeaderValue::from_static(v));
            }
            assert_eq!(
                request.for_response(&headers, "accept-encoding"),
                want,
                "{request:?} {accept:?}"
            );
        }
    }

    #[test]
    fn round_trip_only_above_the_threshold() {
        let small = Bytes::from_static(b"hello");
        assert_eq!(
            deflate(Encoding::Gzip, small.clone()).ok(),
            Some((0, small))
        );
        let big = Bytes::from(vec![b'a'; 4 * COMPRESS_MIN_BYTES]);
        let Ok((flag, packed)) = deflate(Encoding::Gzip, big.clone()) else {
            panic!("deflate failed");
        };
        assert_eq!(flag, FLAG_COMPRESSED);
        assert!(packed.len() < big.len() / 10, "{} bytes", packed.len());
        let unpacked = decode_payload(flag, packed, Encoding::Gzip, big.len(), Side::Request);
        assert_eq!(unpacked.ok(), Some(big));
        assert_eq!(
            deflate(Encoding::Identity, Bytes::from(vec![0; 4096]))
                .ok()
                .map(|(f, b)| (f, b.len())),
            Some((0, 4096))
        );
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        // 16 MiB of zeros gzip to about 16 KiB; the limit is 64 KiB.
        let bomb = gzip(&vec![0u8; 16 << 20]).unwrap_or_default();
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let got = inflate(Encoding::Gzip, bomb.clone(), 64 << 10, Side::Request);
        assert_eq!(got.err().map(|s| s.code()), Some(Code::ResourceExhausted));
        // Exactly at the limit is fine.
        let exact = gzip(&[7u8; 1000]).unwrap_or_default();
        assert_eq!(
            inflate(Encoding::Gzip, exact, 1000, Side::Request)
                .ok()
                .map(|b| b.len()),
            Some(1000)
        );
        // Identity is held to the limit too.
        let plain = inflate(
            Encoding::Identity,
            Bytes::from(vec![0; 10]),
            9,
            Side::Request,
        );
        assert_eq!(plain.err().map(|s| s.code()), Some(Code::ResourceExhausted));
    }

    #[test]
    fn bad_payloads_are_the_senders_fault() {
        let cases = [
            (
                FLAG_COMPRESSED,
                &b"not gzip"[..],
                Encoding::Gzip,
                Side::Request,
                Code::InvalidArgument,
            ),
            (
                FLAG_COMPRESSED,
                &b"not gzip"[..],
                Encoding::Gzip,
                Side::Response,
                Code::Internal,
            ),
            (
                FLAG_COMPRESSED,
                &b"x"[..],
                Encoding::Identity,
                Side::Request,
                Code::InvalidArgument,
            ),
        ];
        for (flag, data, encoding, side, want) in cases {
            let got = decode_payload(flag, Bytes::from_static(data), encoding, 64, side);
            assert_eq!(
                got.err().map(|s| s.code()),
                Some(want),
                "{encoding:?} {side:?}"
            );
        }
        let plain = decode_payload(
            0,
            Bytes::from_static(b"raw"),
            Encoding::Gzip,
            64,
            Side::Request,
        );
        assert_eq!(plain.ok().as_deref(), Some(&b"raw"[..]));
    }
}
