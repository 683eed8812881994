//! Test helpers: the example descriptors from `testdata/` and status values built from them.

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tonic::{Code, Status};

/// The pool of `testdata/example/v1/echo.proto` (with google.api annotations kept).
pub(crate) fn pool() -> DescriptorPool {
    let dir = env!("CARGO_MANIFEST_DIR");
    let includes = [format!("{dir}/testdata"), format!("{dir}/../../proto")];
    let compiled = protox::Compiler::new(includes).and_then(|mut c| {
        c.include_imports(true);
        c.open_file("example/v1/echo.proto")?;
        Ok(c.encode_file_descriptor_set())
    });
    match compiled.map(|bytes| DescriptorPool::decode(bytes.as_slice())) {
        Ok(Ok(pool)) => pool,
        other => panic!("cannot compile the test proto: {other:?}"),
    }
}

/// An `example.v1.ErrorDetail`.
pub(crate) fn error_detail(id: &str, message: &str) -> DynamicMessage {
    let Some(desc) = pool().get_message_by_name("example.v1.ErrorDetail") else {
        panic!("no ErrorDetail in the test proto");
    };
    let mut detail = DynamicMessage::new(desc);
    detail.set_field_by_name("id", Value::String(id.to_owned()));
    detail.set_field_by_name("message", Value::String(message.to_owned()));
    detail
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

/// FAILED_PRECONDITION with one `example.v1.ErrorDetail`.
pub(crate) fn failed_precondition_with_detail(id: &str, message: &str) -> Status {
    let rpc = RpcStatus {
        code: Code::FailedPrecondition as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/example.v1.ErrorDetail".into(),
            value: error_detail(id, message).encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::FailedPrecondition,
        message,
        Bytes::from(rpc.encode_to_vec()),
    )
}

/// The state of a gateway over [`pool`] with default options.
pub(crate) fn state() -> crate::state::GatewayState {
    match crate::Gateway::new(pool(), crate::GatewayOptions::default()) {
        Ok(gateway) => gateway.state,
        Err(err) => panic!("cannot build the test gateway: {err}"),
    }
}
