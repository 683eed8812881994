//! switchyard-core: the ZITADEL-compatible user-management domain.
//!
//! - [`domain`]: the user aggregate and its state machine, events, ids, `DomainError`.
//! - [`store`]: the `EventStore` trait and its SQLite backend.
//!
//! It knows nothing about REST, gRPC-Web or Connect: the gateway turns every protocol into a
//! gRPC call to these services.

pub mod auth;
pub mod command;
pub mod domain;
pub mod service;
pub mod store;
