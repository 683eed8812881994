//! The codecs of the gRPC family, shared by gRPC, gRPC-Web and Connect: a message in the
//! request's [`Codec`] (protobuf as it is, or protojson through `switchyard_transcode::json`,
//! with its strictness rules) to the protobuf the handlers take, and back.

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use switchyard_transcode::JsonOptions;
use switchyard_transcode::json::{encode_message, parse_message};
use tonic::Status;

use crate::call::Call;
use crate::detect::Codec;
use crate::state::GatewayState;

/// The JSON mapping of the call's service.
pub(crate) fn json_for<'a>(state: &'a GatewayState, call: &Call) -> &'a JsonOptions {
    state.json_for(call.method.parent_service().full_name())
}

/// A request message in `codec` as protobuf. Binary messages pass through as they are, unless
/// `check` asks to verify they decode as `input` (an upstream would call a bad one INTERNAL;
/// it is the caller's INVALID_ARGUMENT).
///
/// # Errors
///
/// INVALID_ARGUMENT for a message that is not an `input`.
pub(crate) fn to_proto(
    input: &MessageDescriptor,
    codec: Codec,
    data: Bytes,
    json: &JsonOptions,
    check: bool,
) -> Result<Bytes, Status> {
    match codec {
        Codec::Proto => {
            if check {
                DynamicMessage::decode(input.clone(), data.clone()).map_err(|e| {
                    Status::invalid_argument(format!(
                        "the body is not a valid {} message: {e}",
                        input.full_name()
                    ))
                })?;
            }
            Ok(data)
        }
        Codec::Json => Ok(Bytes::from(
            parse_message(input.clone(), &data, json)?.encode_to_vec(),
        )),
    }
}

/// A response message (protobuf) in `codec`.
///
/// # Errors
///
/// INTERNAL when the bytes are not an `output` or cannot be rendered.
pub(crate) fn from_proto(
    output: &MessageDescriptor,
    codec: Codec,
    data: Bytes,
    json: &JsonOptions,
) -> Result<Bytes, Status> {
    match codec {
        Codec::Proto => Ok(data),
        Codec::Json => {
            let message = DynamicMessage::decode(output.clone(), data).map_err(|e| {
                Status::internal(format!("response is not a {}: {e}", output.full_name()))
            })?;
            Ok(Bytes::from(encode_message(&message, json)?))
        }
    }
}

/// Whether the call runs in-process (serve's unary handlers): their binary requests are
/// decoded by the handler itself; an upstream's are checked here first.
pub(crate) fn in_process(call: &Call) -> bool {
    call.handler.is_some()
}

/// The codec a gRPC or gRPC-Web content type names: `application/grpc[-web[-text]]` alone or
/// with `+proto` is protobuf, with `+json` protojson (parameters and case ignored).
///
/// # Errors
///
/// UNIMPLEMENTED for any other codec, naming the ones we take.
pub(crate) fn grpc_codec(headers: &http::HeaderMap) -> Result<Codec, Status> {
    let media = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let subtype = [
        "application/grpc-web-text",
        "application/grpc-web",
        "application/grpc",
    ]
    .iter()
    .find_map(|family| media.strip_prefix(family))
    .unwrap_or_default();
    match subtype {
        "" | "+proto" => Ok(Codec::Proto),
        "+json" => Ok(Codec::Json),
        other => Err(Status::unimplemented(format!(
            "content-type {media}: codec {:?} is not supported; use proto or json",
            other.trim_start_matches('+')
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, header};
    use tonic::Code;

    #[test]
    fn grpc_codec_from_content_type() {
        let cases = [
            ("application/grpc", Ok(Codec::Proto)),
            ("application/grpc+proto", Ok(Codec::Proto)),
            ("application/grpc+json", Ok(Codec::Json)),
            ("Application/GRPC+JSON; charset=utf-8", Ok(Codec::Json)),
            ("application/grpc-web", Ok(Codec::Proto)),
            ("application/grpc-web+json", Ok(Codec::Json)),
            ("application/grpc-web-text+proto", Ok(Codec::Proto)),
            ("application/grpc-web-text+json", Ok(Codec::Json)),
            ("application/grpc+cbor", Err(Code::Unimplemented)),
            ("application/grpc-web+thrift", Err(Code::Unimplemented)),
        ];
        for (content_type, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            assert_eq!(
                grpc_codec(&headers).map_err(|s| s.code()),
                want,
                "{content_type}"
            );
        }
    }
}
