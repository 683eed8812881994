//! The operational side of `serve` and `gateway`: turns the configuration into gateway and
//! server options (limits, CORS, TLS), puts the ops layer (metrics, access log, request ids,
//! `/healthz`, `/readyz`) around the gateway, runs the main and admin listeners, reloads
//! certificates on SIGHUP, and drains on SIGTERM/SIGINT.
//!
//! What is served (the tonic services, the gateway's routes, the upstreams) is the job of
//! `crate::serve` and `crate::gateway_cmd`.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response};
use switchyard_core::command::Core;
use switchyard_gateway::{
    BoxError, CorsOptions, GatewayOptions, Health, Metrics, OpsLayer, ReadinessProbe,
    ServerOptions, TlsAcceptor, TlsFiles,
};
use tower::Layer as _;

use crate::config::{ClientAuth, Config};

/// Applies `[limits]` and `[cors]` to the gateway's options.
pub(crate) fn gateway_options(config: &Config, base: GatewayOptions) -> GatewayOptions {
    GatewayOptions {
        max_message_bytes: config.limits.max_body_bytes,
        default_timeout: config.limits.request_timeout.map(|d| d.0),
        cors: cors_options(config),
        ..base
    }
}

/// `[cors]` as the gateway's CORS options: `None` (no CORS) when no origin is allowed.
fn cors_options(config: &Config) -> Option<CorsOptions> {
    let cors = &config.cors;
    if cors.allowed_origins.is_empty() {
        return None;
    }
    let mut options = CorsOptions {
        // The gateway reads an empty list as "any origin".
        allowed_origins: if cors.allowed_origins.iter().any(|o| o == "*") {
            Vec::new()
        } else {
            cors.allowed_origins.clone()
        },
        ..CorsOptions::default()
    };
    let add = |list: &mut Vec<String>, extra: &[String]| {
        for name in extra {
            let name = name.to_ascii_lowercase();
            if !list.contains(&name) {
                list.push(name);
            }
        }
    };
    add(&mut options.allowed_headers, &["x-request-id".to_owned()]);
    add(&mut options.allowed_headers, &cors.allowed_headers);
    add(&mut options.exposed_headers, &["x-request-id".to_owned()]);
    add(&mut options.exposed_headers, &cors.exposed_headers);
    options.max_age = cors.max_age.0;
    Some(options)
}

/// `[tls]` as an acceptor, if configured.
fn tls_acceptor(config: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: config.tls.client_ca_file.clone(),
        client_auth_required: config.tls.client_auth == ClientAuth::Required,
    };
    TlsAcceptor::new(files)
        .map(Some)
        .context("tls: cannot load the certificate")
}

/// `/readyz`'s probe: the store answers a query.
pub(crate) fn store_probe(core: Core) -> ReadinessProbe {
    Arc::new(move || {
        let core = core.clone();
        Box::pin(async move {
            core.store()
                .has_orgs()
                .await
                .map(|_| ())
                .map_err(|e| format!("store unreachable: {e}"))
        })
    })
}

/// Serves `service` (the gateway around the routes, counting calls into `metrics`) on the main port, and the ops endpoints
/// on the admin port if configured, until SIGTERM/SIGINT and the drain are over.
///
/// # Errors
///
/// A port that cannot be bound, or TLS files that cannot be loaded.
pub(crate) async fn serve<S, B>(
    config: &Config,
    service: S,
    probe: ReadinessProbe,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()>
where
    S: tower::Service<Request<switchyard_gateway::RequestBody>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    {
        // Store commits (one per group-commit batch) feed the commit latency and batch size.
        let metrics = Arc::clone(&metrics);
        switchyard_core::store::stats::set_commit_observer(move |took, batch| {
            metrics.observe_store_commit(took, batch);
        });
    }
    let health = Arc::new(Health::new(Some(probe)));
    let ops = OpsLayer::new(Arc::clone(&metrics), Arc::clone(&health));
    let service = ops.layer(service);

    let tls = tls_acceptor(config)?;
    let options = ServerOptions {
        header_read_timeout: config.limits.header_read_timeout.0,
        idle_timeout: Some(config.limits.idle_timeout.0).filter(|d| !d.is_zero()),
        body_read_timeout: config.limits.body_read_timeout.0,
        body_min_rate: config.limits.body_min_rate,
        max_concurrent_streams: config.limits.max_concurrent_streams,
        max_connections: config.limits.max_connections,
        grace_period: config.shutdown.grace_period.0,
        tls: tls.clone(),
        cleartext: config.tls.cleartext,
        metrics: Some(Arc::clone(&metrics)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let admin = match config.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin_listen on {addr}"))?,
        ),
        None => None,
    };
    let transport = if tls.is_some() {
        if config.tls.cleartext {
            "TLS (h2, http/1.1) and cleartext (HTTP/1.1, h2c)"
        } else {
            "TLS only (h2, http/1.1)"
        }
    } else {
        "HTTP/1.1 and h2c"
    };
    // Tests and scripts wait for this line: it is printed once the socket accepts.
    tracing::info!(addr = %local, transport, "listening (gRPC, gRPC-Web, Connect, REST)");
    if let Some(admin) = admin {
        let admin_addr = admin.local_addr()?;
        tracing::info!(%admin_addr, "admin port: /metrics, /healthz, /readyz");
        // Only the ops endpoints: everything else is 404.
        let admin_service = OpsLayer::new(Arc::clone(&metrics), Arc::clone(&health)).layer(
            tower::service_fn(|_request: Request<switchyard_gateway::RequestBody>| async {
                let mut response = Response::new(http_body_util::Full::new(Bytes::from_static(
                    b"not found: this port serves /metrics, /healthz and /readyz\n",
                )));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                Ok::<_, std::convert::Infallible>(response)
            }),
        );
        tokio::spawn(async move {
            // The admin port keeps answering while the main port drains; it ends with the
            // process.
            let never = std::future::pending::<()>();
            if let Err(err) = switchyard_gateway::serve(admin, admin_service, never).await {
                tracing::warn!(error = %err, "admin port failed");
            }
        });
    }
    if let Some(tls) = tls {
        spawn_reload_on_sighup(tls);
    }
    let drain_delay = config.shutdown.drain_delay.0;
    let shutdown = {
        let health = Arc::clone(&health);
        async move {
            shutdown_signal().await;
            health.start_draining();
            if drain_delay.is_zero() {
                tracing::info!("shutting down: draining (readyz fails), finishing in-flight calls");
            } else {
                tracing::info!(
                    ?drain_delay,
                    "shutting down: readyz fails; still accepting until the drain delay is over"
                );
                tokio::time::sleep(drain_delay).await;
                tracing::info!("drain delay over: no longer accepting, finishing in-flight calls");
            }
        }
    };
    switchyard_gateway::serve_with(listener, service, shutdown, options).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Re-reads the certificate and key on every SIGHUP.
fn spawn_reload_on_sighup(tls: TlsAcceptor) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: certificates will not reload");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "SIGHUP: TLS reload failed; keeping the old one");
                }
            }
        }
    });
    #[cfg(not(unix))]
    drop(tls);
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_follows_the_allowed_origins() {
        struct Case {
            origins: &'static [&'static str],
            want: Option<&'static [&'static str]>,
        }
        let cases = [
            Case {
                origins: &[],
                want: None,
            },
            Case {
                origins: &["*"],
                want: Some(&[]),
            },
            Case {
                origins: &["https://a.example"],
                want: Some(&["https://a.example"]),
            },
        ];
        for case in cases {
            let mut config = Config::default();
            config.cors.allowed_origins = case.origins.iter().map(|s| (*s).to_owned()).collect();
            let got = cors_options(&config);
            assert_eq!(
                got.as_ref().map(|c| c.allowed_origins.clone()),
                case.want
                    .map(|w| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
                "{:?}",
                case.origins
            );
            if let Some(cors) = got {
                assert!(cors.exposed_headers.iter().any(|h| h == "grpc-status"));
                assert!(cors.allowed_headers.iter().any(|h| h == "x-zitadel-orgid"));
                assert!(cors.exposed_headers.iter().any(|h| h == "x-request-id"));
            }
        }
    }
}
