//! `DomainError`: the one error type of the domain, carrying ZITADEL's error identity.
//!
//! ZITADEL renders a domain error as the gRPC message `<text> (<id>)` with one
//! `zitadel.v1.ErrorDetail { id, message }` detail. This module owns the identity (kind, id, text);
//! `service` renders it as a `tonic::Status`.

use std::fmt;

/// The class of a domain error; each maps to exactly one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (gRPC INVALID_ARGUMENT).
    InvalidArgument,
    /// The addressed object does not exist or is not visible (gRPC NOT_FOUND).
    NotFound,
    /// A unique value is taken (gRPC ALREADY_EXISTS).
    AlreadyExists,
    /// The object is in a state that forbids the operation (gRPC FAILED_PRECONDITION).
    FailedPrecondition,
    /// The caller lacks a permission (gRPC PERMISSION_DENIED).
    PermissionDenied,
    /// The caller is not authenticated (gRPC UNAUTHENTICATED).
    Unauthenticated,
    /// The store is busy or unreachable; a retry may succeed (gRPC UNAVAILABLE).
    Unavailable,
    /// The store is out of space (gRPC RESOURCE_EXHAUSTED: "perhaps the entire file system is
    /// out of space", as the gRPC status code list puts it).
    ResourceExhausted,
    /// A fault of ours, not of the caller (gRPC INTERNAL).
    Internal,
}

/// A domain error: its kind, ZITADEL's error id (`COMMAND-6M0sf`) and English text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    /// The class, which decides the gRPC code.
    pub kind: ErrorKind,
    /// ZITADEL's stable error id, e.g. `COMMAND-6M0sf`.
    pub id: &'static str,
    /// The English text, e.g. `User is not inactive`.
    pub message: String,
}

impl DomainError {
    /// A new error of `kind` with ZITADEL's `id` and `message`.
    pub fn new(kind: ErrorKind, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            id,
            message: message.into(),
        }
    }

    /// INVALID_ARGUMENT.
    pub fn invalid_argument(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, id, message)
    }

    /// NOT_FOUND.
    pub fn not_found(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, id, message)
    }

    /// FAILED_PRECONDITION.
    pub fn failed_precondition(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, id, message)
    }

    /// PERMISSION_DENIED.
    pub fn permission_denied(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, id, message)
    }

    /// UNAUTHENTICATED.
    pub fn unauthenticated(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, id, message)
    }

    /// INTERNAL; the message is logged by the caller, the client sees only the id.
    pub fn internal(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, id, message)
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.id)
    }
}

impl std::error::Error for DomainError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_text_then_id_in_parentheses() {
        let err = DomainError::failed_precondition("COMMAND-6M0sf", "User is not inactive");
        assert_eq!(err.to_string(), "User is not inactive (COMMAND-6M0sf)");
    }
}
