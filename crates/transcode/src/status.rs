//! The one gRPC code ⇄ HTTP status table, and error bodies built from a
//! [`tonic::Status`].
//!
//! This module owns every mapping between gRPC codes and HTTP: the REST
//! mapping (grpc-gateway's, from `google/rpc/code.proto`), the Connect
//! protocol's code names and HTTP statuses (connectrpc.com/docs/protocol,
//! "Error Codes"), and the reverse HTTP → gRPC inference used when an upstream
//! answers with a non-gRPC response (gRPC's `doc/http-grpc-status-mapping.md`).
//! It also renders the REST error body, `{"code", "message", "details"}`, and
//! decodes `grpc-status-details-bin` details for the Connect module to reuse.
//! Writing HTTP responses is left to `switchyard-gateway`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use http::StatusCode;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::Code;

use crate::json::JsonOptions;

/// One row of the table.
struct Row {
    code: Code,
    /// The code's canonical name in gRPC's `doc/statuscodes.md`.
    name: &'static str,
    /// REST (grpc-gateway / `google.rpc.Code`) HTTP status.
    rest_http: u16,
    /// Connect protocol code name.
    connect_name: &'static str,
    /// Connect protocol HTTP status.
    connect_http: u16,
}

/// The table, indexed by gRPC code number (0..=16).
const TABLE: [Row; 17] = [
    // 0 OK: not an error; 200 on both. Connect has no name for it.
    Row {
        code: Code::Ok,
        name: "OK",
        rest_http: 200,
        connect_name: "ok",
        connect_http: 200,
    },
    // 1 CANCELLED: 499 Client Closed Request (nginx's code); Connect spells it "canceled".
    Row {
        code: Code::Cancelled,
        name: "CANCELLED",
        rest_http: 499,
        connect_name: "canceled",
        connect_http: 499,
    },
    // 2 UNKNOWN: 500 Internal Server Error.
    Row {
        code: Code::Unknown,
        name: "UNKNOWN",
        rest_http: 500,
        connect_name: "unknown",
        connect_http: 500,
    },
    // 3 INVALID_ARGUMENT: 400 Bad Request.
    Row {
        code: Code::InvalidArgument,
        name: "INVALID_ARGUMENT",
        rest_http: 400,
        connect_name: "invalid_argument",
        connect_http: 400,
    },
    // 4 DEADLINE_EXCEEDED: 504 Gateway Timeout.
    Row {
        code: Code::DeadlineExceeded,
        name: "DEADLINE_EXCEEDED",
        rest_http: 504,
        connect_name: "deadline_exceeded",
        connect_http: 504,
    },
    // 5 NOT_FOUND: 404 Not Found.
    Row {
        code: Code::NotFound,
        name: "NOT_FOUND",
        rest_http: 404,
        connect_name: "not_found",
        connect_http: 404,
    },
    // 6 ALREADY_EXISTS: 409 Conflict.
    Row {
        code: Code::AlreadyExists,
        name: "ALREADY_EXISTS",
        rest_http: 409,
        connect_name: "already_exists",
        connect_http: 409,
    },
    // 7 PERMISSION_DENIED: 403 Forbidden.
    Row {
        code: Code::PermissionDenied,
        name: "PERMISSION_DENIED",
        rest_http: 403,
        connect_name: "permission_denied",
        connect_http: 403,
    },
    // 8 RESOURCE_EXHAUSTED: 429 Too Many Requests.
    Row {
        code: Code::ResourceExhausted,
        name: "RESOURCE_EXHAUSTED",
        rest_http: 429,
        connect_name: "resource_exhausted",
        connect_http: 429,
    },
    // 9 FAILED_PRECONDITION: 400 Bad Request (not 412: the client must fix state, not a header).
    Row {
        code: Code::FailedPrecondition,
        name: "FAILED_PRECONDITION",
        rest_http: 400,
        connect_name: "failed_precondition",
        connect_http: 400,
    },
    // 10 ABORTED: 409 Conflict (concurrency conflict, retry at a higher level).
    Row {
        code: Code::Aborted,
        name: "ABORTED",
        rest_http: 409,
        connect_name: "aborted",
        connect_http: 409,
    },
    // 11 OUT_OF_RANGE: 400 Bad Request.
    Row {
        code: Code::OutOfRange,
        name: "OUT_OF_RANGE",
        rest_http: 400,
        connect_name: "out_of_range",
        connect_http: 400,
    },
    // 12 UNIMPLEMENTED: 501 Not Implemented.
    Row {
        code: Code::Unimplemented,
        name: "UNIMPLEMENTED",
        rest_http: 501,
        connect_name: "unimplemented",
        connect_http: 501,
    },
    // 13 INTERNAL: 500 Internal Server Error.
    Row {
        code: Code::Internal,
        name: "INTERNAL",
        rest_http: 500,
        connect_name: "internal",
        connect_http: 500,
    },
    // 14 UNAVAILABLE: 503 Service Unavailable.
    Row {
        code: Code::Unavailable,
        name: "UNAVAILABLE",
        rest_http: 503,
        connect_name: "unavailable",
        connect_http: 503,
    },
    // 15 DATA_LOSS: 500 Internal Server Error.
    Row {
        code: Code::DataLoss,
        name: "DATA_LOSS",
        rest_http: 500,
        connect_name: "data_loss",
        connect_http: 500,
    },
    // 16 UNAUTHENTICATED: 401 Unauthorized.
    Row {
        code: Code::Unauthenticated,
        name: "UNAUTHENTICATED",
        rest_http: 401,
        connect_name: "unauthenticated",
        connect_http: 401,
    },
];

fn row(code: Code) -> &'static Row {
    // `Code` is `#[repr(i32)]`-like with values 0..=16; anything else is UNKNOWN.
    TABLE.iter().find(|r| r.code == code).unwrap_or(&TABLE[2])
}

fn status_code(n: u16) -> StatusCode {
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The HTTP status of a REST response carrying `code` (grpc-gateway's mapping).
pub fn http_status(code: Code) -> StatusCode {
    status_code(row(code).rest_http)
}

/// The HTTP status of a Connect unary error response carrying `code`.
pub fn connect_http_status(code: Code) -> StatusCode {
    status_code(row(code).connect_http)
}

/// gRPC's canonical name for `code`, e.g. `FAILED_PRECONDITION` (metrics and logs use it).
pub fn grpc_code_name(code: Code) -> &'static str {
    row(code).name
}

/// The Connect protocol's name for `code`, e.g. `failed_precondition`.
pub fn connect_code_name(code: Code) -> &'static str {
    row(code).connect_name
}

/// The code for a Connect code name; `None` for a name Connect does not define.
pub fn code_from_connect_name(name: &str) -> Option<Code> {
    TABLE
        .iter()
        .skip(1)
        .find(|r| r.connect_name == name)
        .map(|r| r.code)
}

/// Infers a gRPC code from the HTTP status of a response that carries no gRPC
/// status (gRPC's `doc/http-grpc-status-mapping.md`; Connect's "HTTP to Error
/// Code" table is the same).
pub fn code_from_http_status(status: StatusCode) -> Code {
    match status.as_u16() {
        // 400 Bad Request: the peer could not parse what we sent.
        400 => Code::Internal,
        // 401 Unauthorized.
        401 => Code::Unauthenticated,
        // 403 Forbidden.
        403 => Code::PermissionDenied,
        // 404 Not Found: no such method.
        404 => Code::Unimplemented,
        // 429 Too Many Requests, 502 Bad Gateway, 503 Service Unavailable,
        // 504 Gateway Timeout: try again later.
        429 | 502 | 503 | 504 => Code::Unavailable,
        // Everything else, 200 included (a 200 without grpc-status is broken).
        _ => Code::Unknown,
    }
}

/// `google.rpc.Status`, as carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// One `google.protobuf.Any` detail of a status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusDetail {
    /// The full message name: the type URL after its last `/`.
    pub type_name: String,
    /// The type URL as sent, e.g. `type.googleapis.com/pkg.ErrorDetail`.
    pub type_url: String,
    /// The encoded message.
    pub value: Bytes,
    /// The message as JSON (without `@type`) if its type is in the pool.
    pub debug: Option<serde_json::Value>,
}

/// Decodes the details of `status` (an encoded `google.rpc.Status` in
/// [`tonic::Status::details`]). Details that do not decode are dropped: the
/// code and message still reach the client.
pub fn status_details(status: &tonic::Status, pool: &DescriptorPool) -> Vec<StatusDetail> {
    let Ok(rpc) = RpcStatus::decode(status.details()) else {
        return Vec::new();
    };
    rpc.details
        .into_iter()
        .map(|any| {
            let type_name = type_name(&any.type_url).to_owned();
            let debug = pool
                .get_message_by_name(&type_name)
                .and_then(|desc| DynamicMessage::decode(desc, any.value.as_slice()).ok())
                .and_then(|msg| {
                    msg.serialize_with_options(
                        serde_json::value::Serializer,
                        &JsonOptions::default().serialize_options(),
                    )
                    .ok()
                });
            StatusDetail {
                type_name,
                type_url: any.type_url,
                value: Bytes::from(any.value),
                debug,
            }
        })
        .collect()
}

/// The Connect protocol's `value` field: unpadded standard base64.
pub fn connect_detail_value(detail: &StatusDetail) -> String {
    STANDARD_NO_PAD.encode(&detail.value)
}

fn type_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

/// Renders `status` as the REST error body:
/// `{"code":9,"message":"...","details":[{"@type":"type.googleapis.com/...", ...}]}`.
///
/// Each detail whose type is in `pool` is rendered by the proto3 JSON mapping
/// for `Any` (fields inline after `@type`, or under `value` for well-known
/// types with a special JSON form); otherwise as `{"@type": url, "value":
/// <base64>}`.
pub fn rest_error_body(status: &tonic::Status, pool: &DescriptorPool) -> Vec<u8> {
    let details: Vec<String> = RpcStatus::decode(status.details())
        .map(|rpc| rpc.details)
        .unwrap_or_default()
        .iter()
        .map(|any| any_to_json(any, pool))
        .collect();
    let message = serde_json::Value::String(status.message().to_owned());
    // Built by hand to keep the field order stable: code, message, details.
    format!(
        "{{\"code\":{},\"message\":{},\"details\":[{}]}}",
        i32::from(status.code()),
        message,
        details.join(",")
    )
    .into_bytes()
}

/// `Any` in the proto3 JSON mapping, with `@type` first.
fn any_to_json(any: &prost_types::Any, pool: &DescriptorPool) -> String {
    let url = serde_json::Value::String(any.type_url.clone());
    let rendered = pool
        .get_message_by_name(type_name(&any.type_url))
        .and_then(|desc| {
            let wkt = has_special_json(desc.full_name());
            DynamicMessage::decode(desc, any.value.as_slice())
                .ok()
                .map(|msg| (msg, wkt))
        })
        .and_then(|(msg, wkt)| {
            crate::json::encode_message(&msg, &JsonOptions::default())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(|json| (json, wkt))
        });
    match rendered {
        Some((json, false)) => match json.strip_prefix('{').map(str::trim_start) {
            Some("}") => format!("{{\"@type\":{url}}}"),
            Some(rest) => format!("{{\"@type\":{url},{rest}"),
            None => format!("{{\"@type\":{url},\"value\":{json}}}"),
        },
        Some((json, true)) => format!("{{\"@type\":{url},\"value\":{json}}}"),
        None => format!(
            "{{\"@type\":{url},\"value\":\"{}\"}}",
            STANDARD.encode(&any.value)
        ),
    }
}

/// Well-known types whose JSON is not an object of their fields; inside an
/// `Any` they go under `value`.
fn has_special_json(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

#[cfg(test)]
#[path = "status/tests.rs"]
mod tests;
