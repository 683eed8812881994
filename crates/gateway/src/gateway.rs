//! [`Gateway`]: what is built once at start-up from the descriptors and the options.
//!
//! It owns the REST route table, the method index Connect uses, and the options; serving
//! requests is left to [`crate::layer`] and the protocol modules.

use std::sync::Arc;
use std::time::Duration;

use prost_reflect::DescriptorPool;
use switchyard_transcode::{JsonOptions, RouteTableBuilder, RouteTableError};

use crate::call::{Authenticator, Handlers};
use crate::layer::GatewayLayer;
use crate::metrics::Metrics;
use crate::state::{GatewayState, MethodIndex};

/// Default limit for a request or response message: 4 MiB, as gRPC's default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How the gateway is configured.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// REST path prefix per service: `("zitadel.management.v1.ManagementService",
    /// "/management/v1")`. Services not listed are served at their annotation paths.
    pub rest_prefixes: Vec<(String, String)>,
    /// JSON mapping options for REST and Connect JSON.
    pub json: JsonOptions,
    /// CORS for browsers (gRPC-Web, Connect, REST); `None` answers no preflight and adds no
    /// CORS headers.
    pub cors: Option<CorsOptions>,
    /// Largest request body or message accepted, and largest response message relayed.
    pub max_message_bytes: usize,
    /// Per-service settings (JSON mapping, default deadline) by service full name; services
    /// not listed use [`GatewayOptions::json`] and [`GatewayOptions::default_timeout`].
    pub services: Vec<(String, ServiceOptions)>,
    /// Which request headers become gRPC metadata (REST and Connect). `None` forwards every
    /// header but hop-by-hop and transport ones. `Some(list)` forwards only `authorization`,
    /// `Grpc-Metadata-*` (prefix stripped) and names matching the list, where a trailing `*`
    /// is a prefix match (`x-zitadel-*`), as grpc-gateway's header matcher does.
    pub forward_headers: Option<Vec<String>>,
    /// Deadline for calls whose client sent none.
    pub default_timeout: Option<Duration>,
    /// Serve the OpenAPI 3.1 document of the REST routes at `GET /openapi.json`.
    pub openapi: bool,
    /// What that document says beyond the routes: header parameters per service, servers, title.
    pub openapi_options: switchyard_transcode::openapi::OpenApiOptions,
}

/// Settings of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceOptions {
    /// The JSON mapping for this service's REST and Connect JSON calls.
    pub json: Option<JsonOptions>,
    /// Deadline for calls whose client sent none.
    pub timeout: Option<Duration>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            rest_prefixes: Vec::new(),
            json: JsonOptions::default(),
            cors: Some(CorsOptions::default()),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            services: Vec::new(),
            forward_headers: None,
            default_timeout: None,
            openapi: false,
            openapi_options: switchyard_transcode::openapi::OpenApiOptions::default(),
        }
    }
}

/// CORS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsOptions {
    /// Origins allowed to call; empty means any origin (the request's origin is echoed).
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send (answered on preflight).
    pub allowed_headers: Vec<String>,
    /// Response headers a browser may read.
    pub exposed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

impl Default for CorsOptions {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            allowed_origins: Vec::new(),
            allowed_headers: strings(&[
                "authorization",
                "content-type",
                "connect-protocol-version",
                "connect-timeout-ms",
                "grpc-timeout",
                "x-grpc-web",
                "x-user-agent",
                "x-zitadel-orgid",
                // Compression, as browsers' Connect and gRPC-Web clients send it.
                "content-encoding",
                "connect-content-encoding",
                "connect-accept-encoding",
                "grpc-encoding",
                "grpc-accept-encoding",
            ]),
            exposed_headers: strings(&[
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                // How the answer is compressed, and what we take.
                "content-encoding",
                "connect-content-encoding",
                "connect-accept-encoding",
                "grpc-encoding",
                "grpc-accept-encoding",
            ]),
            max_age: Duration::from_secs(7200),
        }
    }
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The `google.api.http` annotations do not make a valid route table.
    #[error("invalid REST routes: {0}")]
    Routes(#[from] RouteTableError),
    /// An option is out of range.
    #[error("invalid gateway option: {0}")]
    Option(String),
}

/// The generic gateway, built once from descriptors; turn it into a tower layer with
/// [`Gateway::layer`].
#[derive(Debug)]
pub struct Gateway {
    pub(crate) state: GatewayState,
}

impl Gateway {
    /// Builds the route table and method index for every service in `pool`.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Routes`] when an annotation is invalid or a prefix does not start with
    /// `/`; [`GatewayError::Option`] when `max_message_bytes` is zero.
    pub fn new(pool: DescriptorPool, opts: GatewayOptions) -> Result<Self, GatewayError> {
        if opts.max_message_bytes == 0 {
            return Err(GatewayError::Option(
                "max_message_bytes must be positive".into(),
            ));
        }
        let mut builder = RouteTableBuilder::new(pool.clone());
        for (service, prefix) in &opts.rest_prefixes {
            builder = builder.service_prefix(service.clone(), prefix.clone());
        }
        let routes = builder.build()?;
        let openapi = opts
            .openapi
            .then(|| {
                switchyard_transcode::openapi::render_bytes_with(&routes, &opts.openapi_options)
            })
            .map(bytes::Bytes::from);
        let services = opts.services.iter().cloned().collect();
        Ok(Self {
            state: GatewayState {
                methods: MethodIndex::new(&pool),
                pool,
                routes,
                opts,
                openapi,
                handlers: None,
                authenticator: None,
                metrics: None,
                services,
            },
        })
    }

    /// Calls the unary methods in `handlers` in-process, without the wire shape of gRPC; every
    /// other method goes to the inner service given to [`GatewayLayer`].
    #[must_use]
    pub fn with_handlers(mut self, handlers: Handlers) -> Self {
        self.state.methods.attach(&handlers);
        self.state.handlers = Some(handlers);
        self
    }

    /// Checks the credentials of every in-process call with `authenticator` before its body is
    /// read: a call without valid credentials is refused without parsing what it sent, and
    /// the handler finds what the authenticator returned in its request's extensions.
    #[must_use]
    pub fn with_authenticator(mut self, authenticator: Authenticator) -> Self {
        self.state.authenticator = Some(crate::state::AuthenticatorFn(authenticator));
        self
    }

    /// Counts every call (requests, latency, in flight) into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.state.metrics = Some(metrics);
        self
    }

    /// The tower layer that puts this gateway in front of a gRPC service.
    pub fn layer(self) -> GatewayLayer {
        GatewayLayer::new(Arc::new(self.state))
    }

    /// The OpenAPI 3.1 document of the REST routes, as JSON.
    pub fn openapi(&self) -> serde_json::Value {
        switchyard_transcode::openapi::render_with(
            &self.state.routes,
            &self.state.opts.openapi_options,
        )
    }

    /// The descriptors this gateway serves.
    pub fn pool(&self) -> &DescriptorPool {
        &self.state.pool
    }
}
