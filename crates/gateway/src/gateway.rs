//! [`Gateway`]: what is built once at start-up from the descriptors and the options.
//!
//! It owns the REST route table, the method index Connect uses, and the options; serving
//! requests is left to [`crate::layer`] and the protocol modules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::{DescriptorPool, MethodDescriptor};
use switchyard_transcode::{JsonOptions, RouteTable, RouteTableBuilder, RouteTableError};

use crate::layer::GatewayLayer;

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
            ]),
            exposed_headers: strings(&["grpc-status", "grpc-message", "grpc-status-details-bin"]),
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
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) state: Arc<GatewayState>,
}

/// Everything the per-request code reads, shared behind an `Arc`.
#[derive(Debug)]
pub(crate) struct GatewayState {
    pub(crate) pool: DescriptorPool,
    pub(crate) methods: MethodIndex,
    pub(crate) routes: RouteTable,
    pub(crate) opts: GatewayOptions,
    /// The OpenAPI document, rendered once when [`GatewayOptions::openapi`] is set.
    pub(crate) openapi: Option<bytes::Bytes>,
    services: HashMap<String, ServiceOptions>,
}

impl GatewayState {
    /// The service full name of a gRPC path `/pkg.Service/Method`.
    fn service_of(grpc_path: &str) -> &str {
        grpc_path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }

    /// The JSON mapping for the method at `grpc_path`.
    pub(crate) fn json_for(&self, grpc_path: &str) -> &JsonOptions {
        self.services
            .get(Self::service_of(grpc_path))
            .and_then(|s| s.json.as_ref())
            .unwrap_or(&self.opts.json)
    }

    /// The deadline for the method at `grpc_path` when the client gives none.
    pub(crate) fn timeout_for(&self, grpc_path: &str, asked: Option<Duration>) -> Option<Duration> {
        asked.or_else(|| {
            self.services
                .get(Self::service_of(grpc_path))
                .and_then(|s| s.timeout)
                .or(self.opts.default_timeout)
        })
    }
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
            state: Arc::new(GatewayState {
                methods: MethodIndex::new(&pool),
                pool,
                routes,
                opts,
                openapi,
                services,
            }),
        })
    }

    /// The tower layer that puts this gateway in front of a gRPC service.
    pub fn layer(self) -> GatewayLayer {
        GatewayLayer::new(self)
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

/// Every method in the pool by its gRPC path, `/pkg.Service/Method`.
#[derive(Debug, Default)]
pub(crate) struct MethodIndex {
    by_path: HashMap<String, MethodDescriptor>,
}

impl MethodIndex {
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let by_path = pool
            .services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .map(|method| {
                let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
                (path, method)
            })
            .collect();
        Self { by_path }
    }

    pub(crate) fn get(&self, path: &str) -> Option<&MethodDescriptor> {
        self.by_path.get(path)
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }
}
