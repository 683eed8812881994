//! Connect's error: the JSON `{"code":"...","message":"...","details":[{"type","value","debug"}]}`
//! — the body of a unary error (with the HTTP status Connect gives the code) and the `error`
//! of a stream's end-of-stream message. Code names and statuses come from
//! `switchyard_transcode::status`.

use http::Response;
use prost_reflect::DescriptorPool;
use switchyard_transcode::status::{
    connect_code_name, connect_detail_value, connect_http_status, status_details,
};
use tonic::{Code, Status};

use crate::protocol::{full_response, visible_metadata};

/// Renders `status` as a Connect unary error: the error JSON
/// `{"code":"...","message":"...","details":[{"type","value","debug"}]}` with the HTTP status
/// Connect gives the code, and the status metadata as headers.
pub(crate) fn encode_error(status: &Status, pool: &DescriptorPool) -> Response<tonic::body::Body> {
    let code = error_code(status);
    let body = error_json(status, pool);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = full_response(connect_http_status(code), "application/json", bytes);
    let headers = response.headers_mut();
    for (name, value) in visible_metadata(status.metadata().clone().into_headers()) {
        headers.append(name, value);
    }
    response
}

/// The code an error is sent with: an OK status is never an error; treat it as the Connect
/// spec treats a broken peer.
fn error_code(status: &Status) -> Code {
    if status.code() == Code::Ok {
        Code::Unknown
    } else {
        status.code()
    }
}

/// The Connect error JSON, `{"code":"...","message":"...","details":[{"type","value","debug"}]}`,
/// shared by unary errors and the end-of-stream message.
pub(crate) fn error_json(status: &Status, pool: &DescriptorPool) -> serde_json::Value {
    let code = error_code(status);
    let mut body = serde_json::Map::new();
    body.insert("code".into(), connect_code_name(code).into());
    if !status.message().is_empty() {
        body.insert("message".into(), status.message().into());
    }
    let details: Vec<serde_json::Value> = status_details(status, pool)
        .iter()
        .map(|detail| {
            let mut d = serde_json::Map::new();
            d.insert("type".into(), detail.type_name.clone().into());
            d.insert("value".into(), connect_detail_value(detail).into());
            if let Some(debug) = &detail.debug {
                d.insert("debug".into(), debug.clone());
            }
            serde_json::Value::Object(d)
        })
        .collect();
    if !details.is_empty() {
        body.insert("details".into(), details.into());
    }
    serde_json::Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode, header};
    use http_body_util::BodyExt;
    use prost::Message;

    use crate::testutil;

    async fn body_json(response: Response<tonic::body::Body>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    #[tokio::test]
    async fn error_json_carries_code_message_and_details() {
        let pool = testutil::pool();
        let status = testutil::failed_precondition_with_detail("E-1", "user is locked");
        let response = encode_error(&status, &pool);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        let json = body_json(response).await;
        assert_eq!(json["code"], "failed_precondition");
        assert_eq!(json["message"], "user is locked");
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "example.v1.ErrorDetail");
        assert_eq!(detail["debug"]["id"], "E-1");
        // Unpadded standard base64 of the encoded ErrorDetail.
        let value = detail["value"].as_str().unwrap_or_default();
        assert!(!value.ends_with('='));
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value)
            .unwrap_or_default();
        let want = testutil::error_detail("E-1", "user is locked").encode_to_vec();
        assert_eq!(raw, want);
    }

    #[tokio::test]
    async fn error_status_per_code() {
        let pool = testutil::pool();
        let cases = [
            (Code::InvalidArgument, 400, "invalid_argument"),
            (Code::Unauthenticated, 401, "unauthenticated"),
            (Code::PermissionDenied, 403, "permission_denied"),
            (Code::NotFound, 404, "not_found"),
            (Code::AlreadyExists, 409, "already_exists"),
            (Code::ResourceExhausted, 429, "resource_exhausted"),
            (Code::Unimplemented, 501, "unimplemented"),
            (Code::Unavailable, 503, "unavailable"),
            (Code::DeadlineExceeded, 504, "deadline_exceeded"),
            (Code::Internal, 500, "internal"),
            (Code::Ok, 500, "unknown"),
        ];
        for (code, http, name) in cases {
            let response = encode_error(&Status::new(code, ""), &pool);
            assert_eq!(response.status().as_u16(), http, "{code:?}");
            let json = body_json(response).await;
            assert_eq!(json["code"], name, "{code:?}");
            assert!(json.get("message").is_none(), "empty message is omitted");
            assert!(json.get("details").is_none(), "no details, no key");
        }
    }
}
