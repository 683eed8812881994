//! Switchyard's gateway: one port serving a set of gRPC handlers over native gRPC, gRPC-Web
//! (binary and text), Connect (unary) and JSON REST transcoded from `google.api.http`.
//!
//! The gateway is generic: it is driven by a [`prost_reflect::DescriptorPool`] and calls any
//! gRPC [`tower::Service`] in-process (tonic `Routes`) or a client to a remote upstream.
//! Path templates, the route table, JSON binding and the code ⇄ HTTP status table live in
//! `switchyard-transcode`.
//!
//! - [`Gateway`] is built once from descriptors and [`GatewayOptions`];
//! - [`Gateway::layer`] gives a [`GatewayLayer`] that wraps the gRPC service into a
//!   [`GatewayService`];
//! - [`serve`] runs HTTP/1.1 and h2c on one listener with graceful shutdown.
//!
//! ```no_run
//! # async fn run(pool: prost_reflect::DescriptorPool, routes: tonic::service::Routes)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use switchyard_gateway::{Gateway, GatewayOptions, serve};
//! use tower::Layer as _;
//!
//! let opts = GatewayOptions {
//!     rest_prefixes: vec![("pkg.v1.Service".into(), "/pkg/v1".into())],
//!     ..GatewayOptions::default()
//! };
//! let service = Gateway::new(pool, opts)?.layer().layer(routes);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, service, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod call;
mod cors;
pub mod descriptors;
mod detect;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod layer;
mod metrics;
pub mod ops;
mod protocol;
mod server;
mod state;
#[cfg(test)]
mod testutil;
mod tls;
pub mod upstream;

pub use call::{Authenticator, Handlers};
pub use detect::{Codec, Protocol};
pub use gateway::{
    CorsOptions, DEFAULT_MAX_MESSAGE_BYTES, Gateway, GatewayError, GatewayOptions, ServiceOptions,
};
pub use layer::{GatewayLayer, GatewayService, ResponseFuture};
pub use metrics::Metrics;
pub use ops::{Health, OpsLayer, ReadinessProbe};
pub use server::{PeerAddr, RequestBody, ResponseBody, ServerOptions, serve, serve_with};
pub use switchyard_transcode::JsonOptions;
pub use tls::{TlsAcceptor, TlsError, TlsFiles};
pub use upstream::{Upstream, UpstreamRouter};

/// The boxed error type tonic and hyper use for bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
