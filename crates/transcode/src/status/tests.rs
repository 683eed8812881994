use super::*;
use crate::testutil::library_pool;

#[test]
fn code_table() {
    // (code, REST HTTP, Connect name, Connect HTTP)
    let cases = [
        (Code::Ok, 200, "ok", 200),
        (Code::Cancelled, 499, "canceled", 499),
        (Code::Unknown, 500, "unknown", 500),
        (Code::InvalidArgument, 400, "invalid_argument", 400),
        (Code::DeadlineExceeded, 504, "deadline_exceeded", 504),
        (Code::NotFound, 404, "not_found", 404),
        (Code::AlreadyExists, 409, "already_exists", 409),
        (Code::PermissionDenied, 403, "permission_denied", 403),
        (Code::ResourceExhausted, 429, "resource_exhausted", 429),
        (Code::FailedPrecondition, 400, "failed_precondition", 400),
        (Code::Aborted, 409, "aborted", 409),
        (Code::OutOfRange, 400, "out_of_range", 400),
        (Code::Unimplemented, 501, "unimplemented", 501),
        (Code::Internal, 500, "internal", 500),
        (Code::Unavailable, 503, "unavailable", 503),
        (Code::DataLoss, 500, "data_loss", 500),
        (Code::Unauthenticated, 401, "unauthenticated", 401),
    ];
    for (i, (code, rest, name, connect)) in cases.into_iter().enumerate() {
        assert_eq!(
            i32::from(code),
            i32::try_from(i).unwrap_or(-1),
            "{code:?} is row {i}"
        );
        assert_eq!(http_status(code).as_u16(), rest, "{code:?}");
        assert_eq!(connect_code_name(code), name, "{code:?}");
        assert_eq!(connect_http_status(code).as_u16(), connect, "{code:?}");
        let back = code_from_connect_name(name);
        assert_eq!(back, (code != Code::Ok).then_some(code), "{name}");
    }
    assert_eq!(code_from_connect_name("cancelled"), None);
    assert_eq!(code_from_connect_name("FAILED_PRECONDITION"), None);
}

#[test]
fn code_from_http_status_table() {
    let cases = [
        (200, Code::Unknown),
        (400, Code::Internal),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::Unimplemented),
        (409, Code::Unknown),
        (429, Code::Unavailable),
        (500, Code::Unknown),
        (502, Code::Unavailable),
        (503, Code::Unavailable),
        (504, Code::Unavailable),
    ];
    for (http, want) in cases {
        let status = StatusCode::from_u16(http).unwrap_or(StatusCode::IM_A_TEAPOT);
        assert_eq!(code_from_http_status(status), want, "{http}");
    }
}

/// `example.v1.ErrorDetail`, for building test details.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorDetail {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    message: String,
}

fn any(type_url: &str, value: Vec<u8>) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.to_owned(),
        value,
    }
}

fn status_with(code: Code, message: &str, details: Vec<prost_types::Any>) -> tonic::Status {
    let rpc = RpcStatus {
        code: code.into(),
        message: message.to_owned(),
        details,
    };
    tonic::Status::with_details(code, message, Bytes::from(rpc.encode_to_vec()))
}

#[test]
fn rest_error_body_table() {
    let detail = ErrorDetail {
        id: "COMMAND-6M0sf".into(),
        message: "Book is not archived".into(),
    };
    let duration = prost_types::Duration {
        seconds: 30,
        nanos: 0,
    };
    struct Case {
        input: tonic::Status,
        want: &'static str,
    }
    let cases = [
        Case {
            input: status_with(
                Code::FailedPrecondition,
                "Book is not archived (COMMAND-6M0sf)",
                vec![any(
                    "type.googleapis.com/example.v1.ErrorDetail",
                    detail.encode_to_vec(),
                )],
            ),
            want: r#"{"code":9,"message":"Book is not archived (COMMAND-6M0sf)","details":[{"@type":"type.googleapis.com/example.v1.ErrorDetail","id":"COMMAND-6M0sf","message":"Book is not archived"}]}"#,
        },
        Case {
            input: tonic::Status::not_found("no \"such\" book"),
            want: r#"{"code":5,"message":"no \"such\" book","details":[]}"#,
        },
        // A type outside the pool: base64 of the bytes.
        Case {
            input: status_with(
                Code::Internal,
                "x",
                vec![any("type.googleapis.com/other.Unknown", vec![1, 2, 3])],
            ),
            want: r#"{"code":13,"message":"x","details":[{"@type":"type.googleapis.com/other.Unknown","value":"AQID"}]}"#,
        },
        // A well-known type with a special JSON form goes under "value";
        // an empty message is just its @type.
        Case {
            input: status_with(
                Code::Unavailable,
                "later",
                vec![
                    any(
                        "type.googleapis.com/google.protobuf.Duration",
                        duration.encode_to_vec(),
                    ),
                    any("type.googleapis.com/example.v1.ErrorDetail", Vec::new()),
                ],
            ),
            want: r#"{"code":14,"message":"later","details":[{"@type":"type.googleapis.com/google.protobuf.Duration","value":"30s"},{"@type":"type.googleapis.com/example.v1.ErrorDetail"}]}"#,
        },
        // Details that do not decode are dropped, and bytes that do not decode
        // as the named type are rendered as base64.
        Case {
            input: tonic::Status::with_details(Code::Aborted, "m", Bytes::from_static(b"\xff\xff")),
            want: r#"{"code":10,"message":"m","details":[]}"#,
        },
        Case {
            input: status_with(
                Code::Aborted,
                "m",
                vec![any(
                    "type.googleapis.com/example.v1.ErrorDetail",
                    vec![0xff],
                )],
            ),
            want: r#"{"code":10,"message":"m","details":[{"@type":"type.googleapis.com/example.v1.ErrorDetail","value":"/w=="}]}"#,
        },
    ];
    let pool = library_pool();
    for case in cases {
        let got = rest_error_body(&case.input, &pool);
        let got = String::from_utf8_lossy(&got);
        assert_eq!(got, case.want);
        assert!(
            serde_json::from_str::<serde_json::Value>(&got).is_ok(),
            "{got}"
        );
    }
}

#[test]
fn status_details_for_connect() {
    let detail = ErrorDetail {
        id: "E1".into(),
        message: "m".into(),
    };
    let status = status_with(
        Code::InvalidArgument,
        "bad",
        vec![
            any(
                "type.googleapis.com/example.v1.ErrorDetail",
                detail.encode_to_vec(),
            ),
            any("other.Unknown", vec![1]),
        ],
    );
    let got = status_details(&status, &library_pool());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].type_name, "example.v1.ErrorDetail");
    assert_eq!(got[0].value, Bytes::from(detail.encode_to_vec()));
    assert_eq!(
        got[0].debug,
        Some(serde_json::json!({"id": "E1", "message": "m"}))
    );
    assert_eq!(connect_detail_value(&got[0]), "CgJFMRIBbQ");
    assert_eq!(got[1].type_name, "other.Unknown");
    assert_eq!(got[1].debug, None);
    assert!(status_details(&tonic::Status::ok(""), &library_pool()).is_empty());
}
