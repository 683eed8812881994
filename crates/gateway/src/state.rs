//! [`GatewayState`]: what every layer of a request reads, built once by
//! [`Gateway`](crate::Gateway) and shared behind an `Arc` — the descriptors, the method index,
//! the REST routes, the options, the in-process handlers and the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::prost_types::method_options::IdempotencyLevel;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use switchyard_transcode::{JsonOptions, RouteTable};

use crate::call::handlers::InProcess;
use crate::call::{Authenticator, Call, Handlers};
use crate::gateway::{GatewayOptions, ServiceOptions};
use crate::metrics::{MethodMetrics, Metrics};

/// Everything the per-request code reads.
#[derive(Debug)]
pub(crate) struct GatewayState {
    pub(crate) pool: DescriptorPool,
    pub(crate) methods: MethodIndex,
    pub(crate) routes: RouteTable,
    pub(crate) opts: GatewayOptions,
    /// The OpenAPI document, rendered once when [`GatewayOptions::openapi`] is set.
    pub(crate) openapi: Option<bytes::Bytes>,
    /// Unary methods called in-process (serve); the others go to the inner service.
    pub(crate) handlers: Option<Handlers>,
    /// Checks the credentials of in-process calls before their bodies are read.
    pub(crate) authenticator: Option<AuthenticatorFn>,
    /// Where calls are counted; `None` counts nothing (the access line is still written).
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) services: HashMap<String, ServiceOptions>,
}

impl GatewayState {
    /// The JSON mapping for methods of `service`.
    pub(crate) fn json_for(&self, service: &str) -> &JsonOptions {
        self.services
            .get(service)
            .and_then(|s| s.json.as_ref())
            .unwrap_or(&self.opts.json)
    }

    /// The method at a gRPC path `/pkg.Service/Method`.
    ///
    /// # Errors
    ///
    /// UNIMPLEMENTED for a path no descriptor names.
    pub(crate) fn method(&self, path: &str) -> Result<&MethodEntry, tonic::Status> {
        self.methods
            .get(path)
            .ok_or_else(|| tonic::Status::unimplemented(format!("unknown method {path}")))
    }

    /// The call to `entry`, with the client's deadline `asked` or else the configured one.
    pub(crate) fn call(&self, entry: &MethodEntry, asked: Option<Duration>) -> Call {
        let service = entry.descriptor.parent_service();
        Call {
            method: entry.descriptor.clone(),
            path: Arc::clone(&entry.path),
            metrics: Arc::clone(&entry.metrics),
            handler: entry.handler.clone(),
            timeout: self.timeout_for(service.full_name(), asked),
        }
    }

    /// The deadline of a call to `service`: the client's, else the service's, else the
    /// server's default.
    pub(crate) fn timeout_for(&self, service: &str, asked: Option<Duration>) -> Option<Duration> {
        asked.or_else(|| {
            self.services
                .get(service)
                .and_then(|s| s.timeout)
                .or(self.opts.default_timeout)
        })
    }
}

/// A method as the index knows it: its descriptor and its gRPC path.
#[derive(Debug, Clone)]
pub(crate) struct MethodEntry {
    pub(crate) descriptor: MethodDescriptor,
    /// `/pkg.Service/Method`, shared by every call to it.
    pub(crate) path: Arc<str>,
    /// The descriptor says `idempotency_level = NO_SIDE_EFFECTS`: Connect may call it with GET.
    pub(crate) no_side_effects: bool,
    /// Its metric handles, shared by every call to it.
    pub(crate) metrics: Arc<MethodMetrics>,
    /// Its in-process handler, if [`Handlers`] has one for it.
    pub(crate) handler: Option<InProcess>,
}

/// Every method in the pool by its gRPC path, `/pkg.Service/Method`.
#[derive(Debug, Default)]
pub(crate) struct MethodIndex {
    by_path: HashMap<Arc<str>, MethodEntry>,
}

impl MethodIndex {
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let by_path = pool
            .services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .map(|method| {
                let path: Arc<str> =
                    format!("/{}/{}", method.parent_service().full_name(), method.name()).into();
                let entry = MethodEntry {
                    no_side_effects: no_side_effects(&method),
                    descriptor: method,
                    path: Arc::clone(&path),
                    metrics: Arc::default(),
                    handler: None,
                };
                (path, entry)
            })
            .collect();
        Self { by_path }
    }

    /// Gives every method `handlers` serves its in-process handler.
    pub(crate) fn attach(&mut self, handlers: &Handlers) {
        for (path, entry) in &mut self.by_path {
            entry.handler = handlers.unary_handler(path);
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<&MethodEntry> {
        self.by_path.get(path)
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }
}

/// Whether `method`'s options say `idempotency_level = NO_SIDE_EFFECTS`.
fn no_side_effects(method: &MethodDescriptor) -> bool {
    method
        .method_descriptor_proto()
        .options
        .as_ref()
        .is_some_and(|o| o.idempotency_level() == IdempotencyLevel::NoSideEffects)
}

/// An [`Authenticator`] in the state (a closure has no `Debug` of its own).
#[derive(Clone)]
pub(crate) struct AuthenticatorFn(pub(crate) Authenticator);

impl std::fmt::Debug for AuthenticatorFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}
