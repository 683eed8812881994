//! `switchyard gateway`: the generic gateway in front of remote gRPC upstreams.
//!
//! Descriptors come from a FileDescriptorSet (`--descriptor-set`), `.proto` files compiled at
//! start-up (`--proto`, `--proto-path`) or the upstream's server reflection (`--reflect`).
//! A JSON config file (`--config`, see `config/gateway.example.json`) can route services to
//! different upstreams with several endpoints each, and set per-service REST prefixes, JSON
//! options and deadlines; command-line flags add to it. Serving is `switchyard_gateway`'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use prost_reflect::DescriptorPool;
use switchyard_gateway::descriptors;
use switchyard_gateway::{
    Gateway, GatewayOptions, JsonOptions, ServiceOptions, Upstream, UpstreamRouter,
};
use tower::Layer as _;

use crate::LogFormat;

/// Options of `switchyard gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// Address to listen on: HTTP/1.1 and cleartext HTTP/2 (h2c) share it.
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,

    /// The default upstream, `http://HOST:PORT` (h2c); repeat for several endpoints, called
    /// round robin.
    #[arg(long = "upstream", value_name = "URL")]
    pub(crate) upstreams: Vec<String>,

    /// A FileDescriptorSet as written by `protoc --include_imports --descriptor_set_out` or
    /// `buf build -o`.
    #[arg(long, value_name = "FILE")]
    pub(crate) descriptor_set: Option<PathBuf>,

    /// A `.proto` file to compile at start-up (relative to a `--proto-path`); repeatable.
    #[arg(long = "proto", value_name = "FILE")]
    pub(crate) protos: Vec<PathBuf>,

    /// An import directory for `--proto`; repeatable.
    #[arg(long = "proto-path", value_name = "DIR")]
    pub(crate) proto_paths: Vec<PathBuf>,

    /// Fetch the descriptors from the default upstream's server reflection (v1, then v1alpha).
    #[arg(long)]
    pub(crate) reflect: bool,

    /// A JSON config file (see `config/gateway.example.json`).
    #[arg(long, value_name = "FILE", env = "SWITCHYARD_GATEWAY_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Mount a service's REST routes under a path prefix, as `SERVICE=PREFIX`; repeatable.
    #[arg(long = "rest-prefix", value_name = "SERVICE=PREFIX", value_parser = crate::parse_prefix)]
    pub(crate) rest_prefixes: Vec<(String, String)>,

    /// Forward only these request headers as metadata (plus `authorization` and
    /// `Grpc-Metadata-*`); a trailing `*` matches a prefix, e.g. `x-zitadel-*`. Repeatable.
    /// Without it every header but hop-by-hop ones is forwarded.
    #[arg(long = "forward-header", value_name = "PATTERN")]
    pub(crate) forward_headers: Vec<String>,

    /// Default deadline in milliseconds for calls whose client sets none.
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,

    /// Log format on stderr.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,
}

/// The config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Address to listen on.
    #[serde(default)]
    listen: Option<SocketAddr>,
    /// Descriptor source: a FileDescriptorSet file.
    #[serde(default)]
    descriptor_set: Option<PathBuf>,
    /// Descriptor source: `.proto` files and their import paths.
    #[serde(default)]
    protos: Vec<PathBuf>,
    #[serde(default)]
    proto_paths: Vec<PathBuf>,
    /// Descriptor source: the default upstream's reflection.
    #[serde(default)]
    reflect: bool,
    /// Named upstreams.
    #[serde(default)]
    upstreams: HashMap<String, UpstreamConfig>,
    /// The upstream for services without one.
    #[serde(default)]
    default_upstream: Option<String>,
    /// Per-service settings.
    #[serde(default)]
    services: HashMap<String, ServiceConfig>,
    /// Header allow-list, as `--forward-header`.
    #[serde(default)]
    forward_headers: Option<Vec<String>>,
    /// Default deadline in milliseconds.
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// JSON options for services without their own.
    #[serde(default)]
    json: Option<JsonConfig>,
    /// Largest message accepted.
    #[serde(default)]
    max_message_bytes: Option<usize>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamConfig {
    endpoints: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceConfig {
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    json: Option<JsonConfig>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Unknown query parameters are INVALID_ARGUMENT (400) instead of ignored.
    #[serde(default)]
    strict_query: Option<bool>,
    /// Request headers the service reads, listed as header parameters of its operations in
    /// the OpenAPI document.
    #[serde(default)]
    openapi_headers: Vec<String>,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonConfig {
    #[serde(default)]
    use_proto_field_names: Option<bool>,
    #[serde(default)]
    emit_unpopulated: Option<bool>,
    #[serde(default)]
    use_enum_numbers: Option<bool>,
    #[serde(default)]
    ignore_unknown_fields: Option<bool>,
    #[serde(default)]
    ignore_unknown_query_parameters: Option<bool>,
}

impl JsonConfig {
    fn apply(&self, base: &JsonOptions) -> JsonOptions {
        let mut out = base.clone();
        let set = |field: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut out.use_proto_field_names, self.use_proto_field_names);
        set(&mut out.emit_unpopulated, self.emit_unpopulated);
        set(&mut out.use_enum_numbers, self.use_enum_numbers);
        set(&mut out.ignore_unknown_fields, self.ignore_unknown_fields);
        set(
            &mut out.ignore_unknown_query_parameters,
            self.ignore_unknown_query_parameters,
        );
        out
    }
}

/// Reads a config file.
fn read_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read(path).with_context(|| format!("read config {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parse config {}", path.display()))
}

/// Loads the descriptors from whichever source is configured (exactly one).
pub(crate) async fn load_pool(
    descriptor_set: Option<&Path>,
    protos: &[PathBuf],
    proto_paths: &[PathBuf],
    reflect_from: Option<&Upstream>,
) -> anyhow::Result<DescriptorPool> {
    let sources = usize::from(descriptor_set.is_some())
        + usize::from(!protos.is_empty())
        + usize::from(reflect_from.is_some());
    if sources != 1 {
        anyhow::bail!(
            "give exactly one descriptor source: --descriptor-set FILE, --proto FILE (with --proto-path DIR), or --reflect"
        );
    }
    if let Some(path) = descriptor_set {
        return Ok(descriptors::pool_from_descriptor_set_file(path)?);
    }
    if let Some(upstream) = reflect_from {
        return Ok(descriptors::pool_from_reflection(upstream).await?);
    }
    let mut includes = proto_paths.to_vec();
    if includes.is_empty() {
        includes.push(PathBuf::from("."));
    }
    Ok(descriptors::pool_from_protos(protos, &includes)?)
}

/// Runs the gateway until SIGINT or SIGTERM.
pub(crate) async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));

    let mut named: HashMap<String, Upstream> = HashMap::new();
    for (name, up) in &config.upstreams {
        named.insert(
            name.clone(),
            Upstream::new(&up.endpoints).with_context(|| format!("upstream '{name}'"))?,
        );
    }
    let default = if !args.upstreams.is_empty() {
        Some(Upstream::new(&args.upstreams).context("--upstream")?)
    } else if let Some(name) = &config.default_upstream {
        Some(
            named
                .get(name)
                .cloned()
                .with_context(|| format!("default_upstream '{name}' is not in upstreams"))?,
        )
    } else if named.len() == 1 {
        named.values().next().cloned()
    } else {
        None
    };

    let descriptor_set = args
        .descriptor_set
        .as_deref()
        .or(config.descriptor_set.as_deref());
    let protos = if args.protos.is_empty() {
        &config.protos
    } else {
        &args.protos
    };
    let proto_paths = if args.proto_paths.is_empty() {
        &config.proto_paths
    } else {
        &args.proto_paths
    };
    let reflect_from = if args.reflect || config.reflect {
        Some(
            default
                .as_ref()
                .context("--reflect needs an upstream (--upstream URL)")?,
        )
    } else {
        None
    };
    let pool = load_pool(descriptor_set, protos, proto_paths, reflect_from)
        .await
        .context("load descriptors")?;

    let base_json = config
        .json
        .as_ref()
        .map(|j| j.apply(&JsonOptions::default()))
        .unwrap_or_default();
    let mut by_service: HashMap<String, Upstream> = HashMap::new();
    let mut options = GatewayOptions {
        json: base_json.clone(),
        default_timeout: args
            .timeout_ms
            .or(config.timeout_ms)
            .map(Duration::from_millis),
        ..GatewayOptions::default()
    };
    if let Some(max) = config.max_message_bytes {
        options.max_message_bytes = max;
    }
    for (service, cfg) in &config.services {
        if pool.get_service_by_name(service).is_none() {
            anyhow::bail!("config names service '{service}', which the descriptors lack");
        }
        if let Some(name) = &cfg.upstream {
            let up = named
                .get(name)
                .with_context(|| format!("service '{service}': no upstream '{name}'"))?;
            by_service.insert(service.clone(), up.clone());
        }
        if let Some(prefix) = &cfg.prefix {
            options
                .rest_prefixes
                .push((service.clone(), prefix.trim_end_matches('/').to_owned()));
        }
        for header in &cfg.openapi_headers {
            options.openapi_options.headers.push((
                service.clone(),
                switchyard_transcode::openapi::HeaderParameter {
                    name: header.to_ascii_lowercase(),
                    description: format!("Read by {service}."),
                    required: false,
                },
            ));
        }
        options.services.push((
            service.clone(),
            ServiceOptions {
                json: match (&cfg.json, cfg.strict_query) {
                    (None, None) => None,
                    (json, strict) => {
                        let mut opts = json
                            .as_ref()
                            .map_or_else(|| base_json.clone(), |j| j.apply(&base_json));
                        if let Some(strict) = strict {
                            opts.ignore_unknown_query_parameters = !strict;
                        }
                        Some(opts)
                    }
                },
                timeout: cfg.timeout_ms.map(Duration::from_millis),
            },
        ));
    }
    options.rest_prefixes.extend(args.rest_prefixes.clone());
    options.forward_headers = if args.forward_headers.is_empty() {
        config.forward_headers.clone()
    } else {
        Some(args.forward_headers.clone())
    };
    options.openapi = true;
    if default.is_none() && by_service.is_empty() {
        anyhow::bail!("no upstream: give --upstream URL or upstreams in --config");
    }

    let services: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
    let router = UpstreamRouter::new(default, by_service);
    let metrics = std::sync::Arc::new(switchyard_gateway::Metrics::new());
    let gateway = Gateway::new(pool, options)
        .context("build the REST routes")?
        .with_metrics(std::sync::Arc::clone(&metrics));
    let service = gateway.layer().layer(router);

    // The operations of `serve` around it: access log, metrics, /healthz, /readyz (every
    // upstream reachable), limits, graceful drain on SIGTERM/SIGINT.
    let mut endpoints: Vec<String> = args.upstreams.clone();
    for up in config.upstreams.values() {
        endpoints.extend(up.endpoints.iter().cloned());
    }
    tracing::info!(services = ?services, upstream_endpoints = ?endpoints, "gateway routes built");
    let ops_config = crate::config::Config {
        listen,
        ..crate::config::Config::default()
    };
    crate::ops::serve(&ops_config, service, upstream_probe(endpoints), metrics).await
}

/// `/readyz`'s probe in gateway mode: every upstream endpoint accepts a TCP connection within a
/// second (the answer names the first that does not).
fn upstream_probe(endpoints: Vec<String>) -> switchyard_gateway::ReadinessProbe {
    let authorities: Vec<String> = endpoints
        .iter()
        .filter_map(|url| url.parse::<http::Uri>().ok())
        .filter_map(|uri| {
            let host = uri
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            Some(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            })
        })
        .collect();
    std::sync::Arc::new(move || {
        let authorities = authorities.clone();
        Box::pin(async move {
            for authority in &authorities {
                let connect = tokio::net::TcpStream::connect(authority.as_str());
                match tokio::time::timeout(Duration::from_secs(1), connect).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(format!("upstream {authority} unreachable: {e}")),
                    Err(_) => return Err(format!("upstream {authority} did not answer within 1s")),
                }
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/gateway.example.json"
        );
        let config = read_config(Path::new(path));
        let config = config.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!config.upstreams.is_empty());
    }

    #[test]
    fn json_config_overrides_only_what_it_names() {
        let cfg = JsonConfig {
            use_enum_numbers: Some(true),
            ..JsonConfig::default()
        };
        let out = cfg.apply(&JsonOptions::default());
        assert!(out.use_enum_numbers);
        assert_eq!(
            JsonOptions {
                use_enum_numbers: false,
                ..out
            },
            JsonOptions::default()
        );
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let got: Result<Config, _> = serde_json::from_str(r#"{"listen":"127.0.0.1:1","nope":1}"#);
        assert!(got.is_err());
    }
}
