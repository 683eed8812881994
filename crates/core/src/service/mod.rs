//! The tonic services: `zitadel.management.v1.ManagementService` and
//! `zitadel.user.v2.UserService`, over the protocol-free [`Core`](crate::command::Core).
//!
//! This module owns the one `DomainError -> tonic::Status` mapping: the message is
//! `<text> (<id>)` and the details carry `zitadel.v1.ErrorDetail { id, message }` in a
//! `google.rpc.Status`, as ZITADEL answers. Calls are logged by the gateway's call observer (one
//! access line per call), not here.

mod convert;
mod management;
mod user_v2;

use prost::Message;
use switchyard_proto::google::rpc::Status as RpcStatus;
use switchyard_proto::zitadel::v1::ErrorDetail;
use tonic::{Code, Status};

use crate::auth::Caller;
use crate::command::Core;
use crate::domain::{DomainError, ErrorKind};

pub use management::ManagementService;
pub use user_v2::UserService;

const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    }
}

/// Renders a domain error as ZITADEL does: `<text> (<id>)` plus an `ErrorDetail`.
pub fn to_status(err: &DomainError) -> Status {
    let code = code_of(err.kind);
    let message = err.to_string();
    let detail = ErrorDetail {
        id: err.id.to_owned(),
        message: err.message.clone(),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: ERROR_DETAIL_TYPE.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

impl From<DomainError> for Status {
    fn from(err: DomainError) -> Self {
        to_status(&err)
    }
}

/// A request-validation error (the request's shape, before the domain): INVALID_ARGUMENT in
/// the wording of protoc-gen-validate, which ZITADEL's API layer uses.
pub(crate) fn invalid_field(message: &str, field: &str, rule: &str) -> Status {
    Status::invalid_argument(format!("invalid {message}.{field}: {rule}"))
}

/// Authenticates a request from its `authorization` metadata — or takes the caller the
/// gateway already authenticated before reading the body (see [`authenticate`]).
async fn caller<T>(core: &Core, request: &tonic::Request<T>) -> Result<Caller, Status> {
    if let Some(caller) = request.extensions().get::<Caller>() {
        return Ok(caller.clone());
    }
    let values: Vec<&[u8]> = request
        .metadata()
        .get_all("authorization")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    authenticate(core, &values).await
}

/// Authenticates a caller from every value of its `authorization` header (none, one, or —
/// refused — several). The gateway calls this before it reads a request's body, so that a
/// call without valid credentials is refused without parsing anything it sent.
///
/// # Errors
///
/// UNAUTHENTICATED for no, an unknown, an inactive or an ambiguous credential.
pub async fn authenticate(core: &Core, authorization: &[&[u8]]) -> Result<Caller, Status> {
    // Two credentials are ambiguous: which one a proxy or a cache keyed on the first value
    // checked is not the one we would use. Refuse rather than pick.
    if authorization.len() > 1 {
        return Err(to_status(&DomainError::unauthenticated(
            // Ours (ZITADEL has no such check): SY- marks the ids Switchyard introduced.
            "SY-AUTH-2HDR",
            "more than one authorization header",
        )));
    }
    let header = match authorization.first() {
        None => None,
        Some(value) => Some(
            std::str::from_utf8(value)
                .ok()
                .filter(|v| v.is_ascii())
                .ok_or_else(|| {
                    to_status(&DomainError::unauthenticated(
                        "AUTH-7fs1e",
                        "auth header is not valid ASCII",
                    ))
                })?,
        ),
    };
    core.authenticate(header).await.map_err(Status::from)
}

/// The `x-zitadel-orgid` header, if present and readable.
fn org_header<T>(request: &tonic::Request<T>) -> Result<Option<String>, Status> {
    match request.metadata().get("x-zitadel-orgid") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| Status::invalid_argument("x-zitadel-orgid is not valid ASCII")),
    }
}

/// The primary domains of the orgs owning `users`, by org id, for their login names.
async fn org_domains<'a>(
    core: &Core,
    users: impl IntoIterator<Item = &'a crate::domain::user::User>,
) -> Result<std::collections::HashMap<String, String>, Status> {
    let mut domains = std::collections::HashMap::new();
    for user in users {
        if !domains.contains_key(&user.resource_owner) {
            let org = core
                .store()
                .org(&user.resource_owner)
                .await
                .map_err(crate::command::store_error)?;
            domains.insert(
                user.resource_owner.clone(),
                org.map(|o| o.primary_domain).unwrap_or_default(),
            );
        }
    }
    Ok(domains)
}

/// A tonic service trait impl whose every method forwards to its handler,
/// `module::method(self, request)`, answering its message:
/// `forward_handlers!(Service: Trait in pb { method: Request => Response = module; … })`.
macro_rules! forward_handlers {
    ($service:ident: $api:ident in $pb:ident {
        $($method:ident: $request:ident => $response:ident = $module:ident;)*
    }) => {
        #[tonic::async_trait]
        impl $api for $service {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$pb::$request>,
                ) -> Result<tonic::Response<$pb::$response>, tonic::Status> {
                    $module::$method(self, request).await.map(tonic::Response::new)
                }
            )*
        }
    };
}
use forward_handlers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_carry_zitadels_message_and_detail() {
        let err = DomainError::failed_precondition("COMMAND-6M0sf", "User is not inactive");
        let status = to_status(&err);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "User is not inactive (COMMAND-6M0sf)");
        let rpc = RpcStatus::decode(status.details()).expect("google.rpc.Status");
        assert_eq!(rpc.code, Code::FailedPrecondition as i32);
        assert_eq!(rpc.details.len(), 1);
        assert_eq!(rpc.details[0].type_url, ERROR_DETAIL_TYPE);
        let detail = ErrorDetail::decode(rpc.details[0].value.as_slice()).expect("ErrorDetail");
        assert_eq!(
            (detail.id.as_str(), detail.message.as_str()),
            ("COMMAND-6M0sf", "User is not inactive")
        );
    }
}
