//! [`TranscodeError`]: why a REST request could not become a protobuf message,
//! or a response message could not become JSON.
//!
//! Each variant knows its gRPC code ([`TranscodeError::code`]); turning that
//! into an HTTP status is left to [`crate::status`].

/// An error while transcoding between JSON/HTTP and protobuf.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The request body is not valid JSON for the target message; the message
    /// carries serde_json's line and column.
    #[error("invalid JSON body: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A path variable does not convert to its field's type.
    #[error("invalid value for path variable '{field}': {reason}")]
    InvalidPathValue {
        /// The dotted field path from the template.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// A query parameter names no field of the request message.
    #[error("unknown query parameter '{0}'")]
    UnknownQueryParameter(String),
    /// A query parameter does not convert to its field's type.
    #[error("invalid value for query parameter '{name}': {reason}")]
    InvalidQueryValue {
        /// The parameter name as sent.
        name: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// The query string is malformed (bad percent-encoding, not UTF-8).
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// The response message could not be rendered as JSON.
    #[error("cannot render response as JSON: {0}")]
    EncodeResponse(String),
}

impl TranscodeError {
    /// The gRPC code this error stands for: `InvalidArgument` for anything the
    /// client sent, `Internal` for a response we could not render.
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::EncodeResponse(_) => tonic::Code::Internal,
            _ => tonic::Code::InvalidArgument,
        }
    }
}

impl From<TranscodeError> for tonic::Status {
    fn from(err: TranscodeError) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}
