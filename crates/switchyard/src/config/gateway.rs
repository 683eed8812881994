//! The `[gateway]` tables: what `switchyard gateway` serves (descriptors, upstreams, per-service
//! options) beside the keys both modes share (`listen`, `[limits]`, `[cors]`, `[tls]`, …).
//!
//! Checking that the named upstreams exist and that at most one descriptor source is given is
//! here; loading the descriptors and building the routes is `crate::gateway_cmd`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use switchyard_transcode::JsonOptions;

use super::{Dur, KeyDoc, Kind, Schema, SectionDoc, join, join_quoted, render_default};

config_section! {
    /// `switchyard gateway`: any gRPC service behind REST, gRPC, gRPC-Web and Connect, from its
    /// descriptors (`serve` ignores this table). Give one descriptor source: `descriptor_set`,
    /// `protos` or `reflect`.
    Gateway {
        /// A FileDescriptorSet, as `protoc --include_imports --descriptor_set_out` or
        /// `buf build -o` write it.
        descriptor_set: Option<PathBuf> = None,
        /// `.proto` files to compile at start-up, relative to a `proto_paths` directory.
        protos: Vec<PathBuf> = Vec::new(),
        /// Import directories for `protos`; empty means the working directory.
        proto_paths: Vec<PathBuf> = Vec::new(),
        /// Fetch the descriptors from the default upstream's server reflection (v1, then
        /// v1alpha).
        reflect: bool = false,
        /// Endpoints of the default upstream, `http://host:port` (h2c), called round robin;
        /// instead, `default_upstream` may name one of `[gateway.upstreams]`.
        endpoints: Vec<String> = Vec::new(),
        /// The `[gateway.upstreams]` entry serving the services that name none; not needed
        /// when there is only one entry.
        default_upstream: Option<String> = None,
        /// Forward only these request headers as metadata (plus `authorization` and
        /// `Grpc-Metadata-*`); a trailing `*` matches a prefix (`x-zitadel-*`). Unset forwards
        /// every header but hop-by-hop ones.
        forward_headers: Option<Vec<String>> = None,
    }
    sections { json: GatewayJson }
    entries { upstreams["<NAME>"]: GatewayUpstream, services["<SERVICE>"]: GatewayService }
}

config_section! {
    /// The JSON mapping of REST and Connect JSON calls, for services without their own `json`
    /// table.
    GatewayJson {
        /// Write field names as in the `.proto` (`user_name`) instead of lowerCamelCase
        /// (`userName`); input accepts both either way.
        use_proto_field_names: bool = false,
        /// Write fields that hold their zero value (`0`, `""`, `[]`) instead of leaving them out.
        emit_unpopulated: bool = false,
        /// Write enum values as numbers instead of names.
        use_enum_numbers: bool = false,
        /// Ignore unknown fields in request bodies; `false` refuses them (400
        /// INVALID_ARGUMENT).
        ignore_unknown_fields: bool = true,
        /// Ignore query parameters that name no field (cache-busters like `?_=123` pass);
        /// `false` refuses them (400 INVALID_ARGUMENT).
        ignore_unknown_query_parameters: bool = true,
    }
}

config_section! {
    /// A named upstream (`[gateway.upstreams.users]`), for `default_upstream` and the
    /// services' `upstream`.
    GatewayUpstream {
        /// Its endpoints, `http://host:port` (h2c), called round robin; a failing one is
        /// skipped until it recovers.
        endpoints: Vec<String> = Vec::new(),
    }
}

config_section! {
    /// Options of one service, by full name (`[gateway.services."billing.v1.BillingService"]`).
    GatewayService {
        /// The `[gateway.upstreams]` entry serving it; unset: the default upstream.
        upstream: Option<String> = None,
        /// Deadline of its calls whose client sent none; unset: `limits.request_timeout`.
        timeout: Option<Dur> = None,
        /// Unknown query parameters are 400 INVALID_ARGUMENT instead of ignored.
        strict_query: bool = false,
        /// Request headers it reads, listed as header parameters of its operations in
        /// `/openapi.json`.
        openapi_headers: Vec<String> = Vec::new(),
    }
    sections { json: ServiceJson }
}

config_section! {
    /// Its JSON mapping: each key unset is as in `[gateway.json]`.
    ServiceJson {
        /// As `gateway.json.use_proto_field_names`, for this service.
        use_proto_field_names: Option<bool> = None,
        /// As `gateway.json.emit_unpopulated`, for this service.
        emit_unpopulated: Option<bool> = None,
        /// As `gateway.json.use_enum_numbers`, for this service.
        use_enum_numbers: Option<bool> = None,
        /// As `gateway.json.ignore_unknown_fields`, for this service.
        ignore_unknown_fields: Option<bool> = None,
        /// As `gateway.json.ignore_unknown_query_parameters`, for this service.
        ignore_unknown_query_parameters: Option<bool> = None,
    }
}

impl GatewayJson {
    /// The transcoder's options.
    pub(crate) fn options(&self) -> JsonOptions {
        JsonOptions {
            emit_unpopulated: self.emit_unpopulated,
            use_proto_field_names: self.use_proto_field_names,
            use_enum_numbers: self.use_enum_numbers,
            ignore_unknown_fields: self.ignore_unknown_fields,
            ignore_unknown_query_parameters: self.ignore_unknown_query_parameters,
        }
    }
}

impl GatewayService {
    /// The service's JSON options over `base`, or `None` when it changes nothing.
    pub(crate) fn json_options(&self, base: &JsonOptions) -> Option<JsonOptions> {
        let json = &self.json;
        if json == &ServiceJson::default() && !self.strict_query {
            return None;
        }
        let mut out = base.clone();
        let set = |field: &mut bool, value: Option<bool>| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(&mut out.use_proto_field_names, json.use_proto_field_names);
        set(&mut out.emit_unpopulated, json.emit_unpopulated);
        set(&mut out.use_enum_numbers, json.use_enum_numbers);
        set(&mut out.ignore_unknown_fields, json.ignore_unknown_fields);
        set(
            &mut out.ignore_unknown_query_parameters,
            json.ignore_unknown_query_parameters,
        );
        if self.strict_query {
            out.ignore_unknown_query_parameters = false;
        }
        Some(out)
    }
}

impl Gateway {
    /// Checks what serde cannot: (key, what is wrong). Whether there is a descriptor source
    /// and an upstream at all is checked when the gateway starts, since flags may give them.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let sources = usize::from(self.descriptor_set.is_some())
            + usize::from(!self.protos.is_empty())
            + usize::from(self.reflect);
        if sources > 1 {
            return Err((
                "gateway.descriptor_set".into(),
                "expected one descriptor source: gateway.descriptor_set, gateway.protos or \
                 gateway.reflect"
                    .into(),
            ));
        }
        let names = || {
            let names: Vec<&str> = self.upstreams.keys().map(String::as_str).collect();
            if names.is_empty() {
                "there is no [gateway.upstreams.NAME]".to_owned()
            } else {
                format!("[gateway.upstreams] has: {}", names.join(", "))
            }
        };
        if !self.endpoints.is_empty() {
            if self.default_upstream.is_some() {
                return Err((
                    "gateway.default_upstream".into(),
                    "expected gateway.endpoints or gateway.default_upstream, not both".into(),
                ));
            }
            check_endpoints(&self.endpoints).map_err(|e| ("gateway.endpoints".into(), e))?;
        }
        if let Some(name) = &self.default_upstream
            && !self.upstreams.contains_key(name)
        {
            return Err((
                "gateway.default_upstream".into(),
                format!("no upstream {name:?}: {}", names()),
            ));
        }
        for (name, upstream) in &self.upstreams {
            let key = join(&join_quoted("gateway.upstreams", name), "endpoints");
            check_endpoints(&upstream.endpoints).map_err(|e| (key, e))?;
        }
        for (service, options) in &self.services {
            let table = join_quoted("gateway.services", service);
            if let Some(name) = &options.upstream
                && !self.upstreams.contains_key(name)
            {
                return Err((
                    join(&table, "upstream"),
                    format!("no upstream {name:?}: {}", names()),
                ));
            }
        }
        Ok(())
    }
}

/// At least one endpoint, each `http://host[:port]`.
fn check_endpoints(endpoints: &[String]) -> Result<(), String> {
    switchyard_gateway::Upstream::new(endpoints)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_defaults_are_the_transcoders() {
        assert_eq!(GatewayJson::default().options(), JsonOptions::default());
    }

    #[test]
    fn service_json_overrides_only_what_it_names() {
        let base = JsonOptions::default();
        assert_eq!(GatewayService::default().json_options(&base), None);
        let service = GatewayService {
            json: ServiceJson {
                use_enum_numbers: Some(true),
                ..ServiceJson::default()
            },
            ..GatewayService::default()
        };
        let got = service.json_options(&base).expect("changed");
        assert_eq!(
            got,
            JsonOptions {
                use_enum_numbers: true,
                ..base.clone()
            }
        );
        let strict = GatewayService {
            strict_query: true,
            ..GatewayService::default()
        };
        assert!(
            !strict
                .json_options(&base)
                .expect("changed")
                .ignore_unknown_query_parameters
        );
    }
}
