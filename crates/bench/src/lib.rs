//! Shared pieces of the benchmark programs (see `bench/run`): the fixed ReactivateUser answer
//! both ceilings give, and the listen address they take. Not a library for anyone else.

use std::net::SocketAddr;

use switchyard_proto::zitadel::management::v1::ReactivateUserResponse;
use switchyard_proto::zitadel::v1::ObjectDetails;

/// The REST answer of a ReactivateUser call, as Switchyard renders it (ceiling: hyper).
pub const REST_ANSWER: &[u8] = br#"{"details":{"sequence":"3","creationDate":"2026-11-29T10:00:00.123456Z","changeDate":"2026-11-29T10:00:00.123456Z","resourceOwner":"312345678901234567"}}"#;

/// The gRPC answer of a ReactivateUser call, with the same values (ceiling: tonic).
pub fn grpc_answer() -> ReactivateUserResponse {
    let at = prost_types::Timestamp {
        seconds: 1_795_860_000,
        nanos: 123_456_000,
    };
    ReactivateUserResponse {
        details: Some(ObjectDetails {
            sequence: 3,
            creation_date: Some(at),
            change_date: Some(at),
            resource_owner: "312345678901234567".to_owned(),
        }),
    }
}

/// The address to listen on: the first argument, else `127.0.0.1:38080`.
///
/// # Errors
///
/// An argument that is not a socket address.
pub fn listen_addr() -> anyhow::Result<SocketAddr> {
    let arg = std::env::args().nth(1);
    Ok(arg.as_deref().unwrap_or("127.0.0.1:38080").parse()?)
}
