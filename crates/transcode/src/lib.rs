//! Pure transcoding between HTTP/JSON and gRPC/protobuf, driven by descriptors.
//!
//! This crate owns:
//!
//! - [`path_template`]: the `google.api.http` path template grammar
//!   ([`PathTemplate`]), parsing and matching with percent-decoding;
//! - [`route_table`]: every `google.api.http` binding of a
//!   [`prost_reflect::DescriptorPool`], with per-service path prefixes
//!   ([`RouteTableBuilder`], [`RouteTable::find`]);
//! - [`bind`] and [`json`]: building the request message from body, path and
//!   query ([`decode_request`]), and rendering the response
//!   ([`encode_response`]) per the proto3 JSON mapping ([`JsonOptions`]);
//! - [`openapi`]: the OpenAPI 3.1 document of a route table;
//! - [`status`]: the one gRPC code ⇄ HTTP status table (REST and Connect) and
//!   the REST error body.
//!
//! It does no I/O and knows nothing about any particular service: the HTTP
//! server, protocol detection and dispatch belong to `switchyard-gateway`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use switchyard_transcode::PathTemplate;
//! let t = PathTemplate::parse("/v1/{name=shelves/*}/books")?;
//! let bindings = t.match_path("/v1/shelves/s%201/books").ok_or("no match")?;
//! assert_eq!(bindings[0].value, "shelves/s 1");
//! # Ok(()) }
//! ```

pub mod bind;
pub mod error;
pub mod json;
pub mod openapi;
pub mod path_template;
pub mod route_table;
pub mod status;

#[cfg(test)]
pub(crate) mod testutil;

pub use bind::{decode_http_request, decode_request};
pub use error::TranscodeError;
pub use json::{JsonOptions, encode_http_response, encode_response};
pub use path_template::{PathBinding, PathTemplate, PathTemplateError, PathTemplateErrorKind};
pub use route_table::{
    BodySpec, Route, RouteError, RouteMatch, RouteTable, RouteTableBuilder, RouteTableError,
};
pub use status::{StatusDetail, rest_error_body, status_details};
