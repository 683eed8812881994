//! `switchyard gateway`: the generic gateway in front of remote gRPC upstreams.
//!
//! It reads the same configuration as `serve` (`crate::config`): `listen`, `admin_listen`,
//! `[log]`, `[limits]`, `[shutdown]`, `[cors]`, `[tls]` and `rest_prefixes` mean what they mean
//! there, and the `[gateway]` tables say where the descriptors come from (a FileDescriptorSet,
//! `.proto` files compiled at start-up, or the upstream's server reflection), which upstreams
//! serve which services, and per-service options. Flags override the file and the environment.
//! Serving, TLS and the limits are `crate::ops`' and `switchyard_gateway`'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use prost_reflect::DescriptorPool;
use switchyard_gateway::descriptors;
use switchyard_gateway::{Gateway, GatewayOptions, ServiceOptions, Upstream, UpstreamRouter};
use tower::Layer as _;

use crate::LogFormat;
use crate::config::{Config, Dur};

/// The environment variable that named the old JSON file.
const OLD_CONFIG_ENV: &str = "SWITCHYARD_GATEWAY_CONFIG";

/// Options of `switchyard gateway`. Each flag overrides the key named in brackets, in the
/// configuration file and its `SWITCHYARD_…` environment variable (see `switchyard config
/// reference`).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The configuration file (TOML), the same as `serve`'s: its `[gateway]` tables name the
    /// descriptors, the upstreams and per-service options. Default: `config/switchyard.toml`
    /// when it exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on: HTTP/1.1 and HTTP/2 (h2c; h2 with TLS) share it. [key: listen]
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,

    /// Second address serving only /metrics, /healthz and /readyz. [key: admin_listen]
    #[arg(long)]
    pub(crate) admin_listen: Option<SocketAddr>,

    /// The default upstream, `http://HOST:PORT` (h2c); repeat for several endpoints, called
    /// round robin. [key: gateway.endpoints]
    #[arg(long = "upstream", value_name = "URL")]
    pub(crate) upstreams: Vec<String>,

    /// A FileDescriptorSet as written by `protoc --include_imports --descriptor_set_out` or
    /// `buf build -o`. A descriptor flag replaces the configured source.
    /// [key: gateway.descriptor_set]
    #[arg(long, value_name = "FILE")]
    pub(crate) descriptor_set: Option<PathBuf>,

    /// A `.proto` file to compile at start-up (relative to a `--proto-path`); repeatable.
    /// [key: gateway.protos]
    #[arg(long = "proto", value_name = "FILE")]
    pub(crate) protos: Vec<PathBuf>,

    /// An import directory for `--proto`; repeatable. [key: gateway.proto_paths]
    #[arg(long = "proto-path", value_name = "DIR")]
    pub(crate) proto_paths: Vec<PathBuf>,

    /// Fetch the descriptors from the default upstream's server reflection (v1, then v1alpha).
    /// [key: gateway.reflect]
    #[arg(long)]
    pub(crate) reflect: bool,

    /// Mount a service's REST routes under a path prefix, as `SERVICE=PREFIX`; repeatable;
    /// replaces the configured prefixes. [key: rest_prefixes]
    #[arg(long = "rest-prefix", value_name = "SERVICE=PREFIX", value_parser = crate::parse_prefix)]
    pub(crate) rest_prefixes: Vec<(String, String)>,

    /// Forward only these request headers as metadata (plus `authorization` and
    /// `Grpc-Metadata-*`); a trailing `*` matches a prefix, e.g. `x-zitadel-*`. Repeatable.
    /// Without it every header but hop-by-hop ones is forwarded. [key: gateway.forward_headers]
    #[arg(long = "forward-header", value_name = "PATTERN")]
    pub(crate) forward_headers: Vec<String>,

    /// Default deadline in milliseconds for calls whose client sets none.
    /// [key: limits.request_timeout]
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,

    /// Log format on stderr. [key: log.format]
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

impl GatewayArgs {
    /// The effective configuration: the file, then the environment, then these flags.
    ///
    /// # Errors
    ///
    /// What [`Config::load`] finds wrong, or the old JSON file's environment variable set.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        if std::env::var_os(OLD_CONFIG_ENV).is_some() {
            anyhow::bail!(
                "{OLD_CONFIG_ENV} is no longer read: give the TOML configuration with --config \
                 FILE (the old JSON keys are the [gateway] tables now; a JSON file given to \
                 --config is shown translated)"
            );
        }
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        let flags = self;
        if let Some(v) = flags.listen {
            config.listen = v;
        }
        if let Some(v) = flags.admin_listen {
            config.admin_listen = Some(v);
        }
        let gateway = &mut config.gateway;
        if flags.descriptor_set.is_some() || !flags.protos.is_empty() || flags.reflect {
            gateway.descriptor_set.clone_from(&flags.descriptor_set);
            gateway.protos.clone_from(&flags.protos);
            gateway.reflect = flags.reflect;
        }
        if !flags.proto_paths.is_empty() {
            gateway.proto_paths.clone_from(&flags.proto_paths);
        }
        if !flags.upstreams.is_empty() {
            gateway.endpoints.clone_from(&flags.upstreams);
            gateway.default_upstream = None;
        }
        if !flags.forward_headers.is_empty() {
            gateway.forward_headers = Some(flags.forward_headers.clone());
        }
        if !flags.rest_prefixes.is_empty() {
            config.rest_prefixes = flags.rest_prefixes.iter().cloned().collect();
        }
        if let Some(ms) = flags.timeout_ms {
            config.limits.request_timeout = Some(Dur(Duration::from_millis(ms)));
        }
        if let Some(v) = flags.log_format {
            config.log.format = v;
        }
        Ok(config)
    }
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
            "give exactly one descriptor source: --descriptor-set FILE, --proto FILE (with \
             --proto-path DIR) or --reflect; in the configuration gateway.descriptor_set, \
             gateway.protos (with gateway.proto_paths) or gateway.reflect"
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

/// The upstreams of `[gateway]`: the default one (`gateway.endpoints`, else
/// `gateway.default_upstream`, else the only entry) and the named ones.
///
/// # Errors
///
/// An endpoint that is not `http://host[:port]`, or a default naming no entry.
fn upstreams(
    gateway: &crate::config::Gateway,
) -> anyhow::Result<(Option<Upstream>, HashMap<String, Upstream>)> {
    let mut named: HashMap<String, Upstream> = HashMap::new();
    for (name, up) in &gateway.upstreams {
        named.insert(
            name.clone(),
            Upstream::new(&up.endpoints).with_context(|| format!("gateway.upstreams.{name}"))?,
        );
    }
    let default = if !gateway.endpoints.is_empty() {
        Some(Upstream::new(&gateway.endpoints).context("gateway.endpoints (--upstream)")?)
    } else if let Some(name) = &gateway.default_upstream {
        Some(named.get(name).cloned().with_context(|| {
            format!("gateway.default_upstream {name:?} is not in [gateway.upstreams]")
        })?)
    } else if named.len() == 1 {
        named.values().next().cloned()
    } else {
        None
    };
    Ok((default, named))
}

/// The gateway's options from the configuration: `rest_prefixes`, `[gateway]` (JSON mapping,
/// header allow-list, per-service options), then `[limits]` and `[cors]` as `serve` applies
/// them; and the upstream of each service that names one.
///
/// # Errors
///
/// A `[gateway.services]` entry the descriptors lack, or naming no upstream entry.
fn gateway_options(
    config: &Config,
    pool: &DescriptorPool,
    named: &HashMap<String, Upstream>,
) -> anyhow::Result<(GatewayOptions, HashMap<String, Upstream>)> {
    let gateway = &config.gateway;
    let json = gateway.json.options();
    let mut options = GatewayOptions {
        rest_prefixes: config
            .rest_prefixes
            .iter()
            .map(|(service, prefix)| (service.clone(), prefix.trim_end_matches('/').to_owned()))
            .collect(),
        json: json.clone(),
        forward_headers: gateway.forward_headers.clone(),
        openapi: true,
        ..GatewayOptions::default()
    };
    let mut by_service: HashMap<String, Upstream> = HashMap::new();
    for (service, cfg) in &gateway.services {
        if pool.get_service_by_name(service).is_none() {
            anyhow::bail!(
                "[gateway.services.{service:?}]: the descriptors have no service {service}"
            );
        }
        if let Some(name) = &cfg.upstream {
            let up = named.get(name).with_context(|| {
                format!("gateway.services.{service:?}.upstream: no upstream {name:?}")
            })?;
            by_service.insert(service.clone(), up.clone());
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
                json: cfg.json_options(&json),
                timeout: cfg.timeout.map(|d| d.0),
            },
        ));
    }
    Ok((crate::ops::gateway_options(config, options), by_service))
}

/// What `config check` adds for a gateway configuration whose descriptors are files
/// (`gateway.descriptor_set` or `gateway.protos`): they load, every `[gateway.services]` entry is
/// one of their services, and the REST routes build. `None` when there is nothing to load.
///
/// # Errors
///
/// Descriptors that do not load, a service they lack, or an invalid `google.api.http` rule.
pub(crate) fn check(config: &Config) -> anyhow::Result<Option<String>> {
    let gateway = &config.gateway;
    if gateway.descriptor_set.is_none() && gateway.protos.is_empty() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let pool = runtime
        .block_on(load_pool(
            gateway.descriptor_set.as_deref(),
            &gateway.protos,
            &gateway.proto_paths,
            None,
        ))
        .context("load descriptors")?;
    let (_, named) = upstreams(gateway)?;
    let (options, _) = gateway_options(config, &pool, &named)?;
    let services = pool.services().count();
    Gateway::new(pool, options).context("build the REST routes")?;
    Ok(Some(format!(
        "gateway: the descriptors load ({services} services) and their REST routes build"
    )))
}

/// Runs the gateway until SIGINT or SIGTERM.
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let gateway = &config.gateway;
    let (default, named) = upstreams(gateway)?;
    let reflect_from = if gateway.reflect {
        Some(default.as_ref().context(
            "gateway.reflect (--reflect) needs a default upstream: --upstream URL or gateway.endpoints",
        )?)
    } else {
        None
    };
    let pool = load_pool(
        gateway.descriptor_set.as_deref(),
        &gateway.protos,
        &gateway.proto_paths,
        reflect_from,
    )
    .await
    .context("load descriptors")?;
    let (options, by_service) = gateway_options(&config, &pool, &named)?;
    if default.is_none() && by_service.is_empty() {
        anyhow::bail!(
            "no upstream: give --upstream URL, gateway.endpoints or [gateway.upstreams.NAME]"
        );
    }

    let services: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
    let router = UpstreamRouter::new(default, by_service);
    let metrics = std::sync::Arc::new(switchyard_gateway::Metrics::new());
    let built = Gateway::new(pool, options)
        .context("build the REST routes")?
        .with_metrics(std::sync::Arc::clone(&metrics));
    let service = built.layer().layer(router);

    // The operations of `serve` around it: access log, metrics, /healthz, /readyz (every
    // upstream reachable), TLS, limits, graceful drain on SIGTERM/SIGINT.
    let mut endpoints: Vec<String> = gateway.endpoints.clone();
    for up in gateway.upstreams.values() {
        endpoints.extend(up.endpoints.iter().cloned());
    }
    tracing::info!(services = ?services, upstream_endpoints = ?endpoints, "gateway routes built");
    crate::ops::serve(&config, service, upstream_probe(endpoints), metrics).await
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
    fn example_config_parses_and_names_upstreams() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/gateway.example.toml"
        );
        let config = Config::load(Some(Path::new(path)), Vec::new());
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.gateway.upstreams.is_empty());
        assert!(!config.gateway.services.is_empty());
        let (default, named) = upstreams(&config.gateway).expect("valid upstreams");
        assert!(default.is_some());
        assert_eq!(named.len(), config.gateway.upstreams.len());
    }

    #[test]
    fn descriptor_flags_replace_the_configured_source() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "[gateway]\ndescriptor_set = \"api.pb\"\n").expect("write");
        let args = GatewayArgs {
            config: Some(file),
            protos: vec![PathBuf::from("a.proto")],
            upstreams: vec!["http://127.0.0.1:1".into()],
            timeout_ms: Some(1500),
            ..GatewayArgs::default()
        };
        let config = args.load().expect("valid");
        assert_eq!(config.gateway.descriptor_set, None);
        assert_eq!(config.gateway.protos, [PathBuf::from("a.proto")]);
        assert_eq!(config.gateway.endpoints, ["http://127.0.0.1:1"]);
        assert_eq!(
            config.limits.request_timeout.map(|d| d.0),
            Some(Duration::from_millis(1500))
        );
    }
}
