//! `switchyard serve`: opens the store, bootstraps the first admin, and serves the tonic
//! services behind the gateway on one port (gRPC, gRPC-Web, Connect and REST all reach the same
//! in-process handlers).

use std::sync::Arc;

use anyhow::Context as _;
use switchyard_core::command::{Bootstrap, BootstrapResult, Core};
use switchyard_core::service::{ManagementService, UserService};
use switchyard_core::store::sqlite::SqliteStore;
use switchyard_gateway::{Gateway, GatewayOptions};
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementServiceServer;
use switchyard_proto::zitadel::user::v2::user_service_server::UserServiceServer;
use tower::Layer as _;

use crate::ServeArgs;

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    let db_path = args.data_dir.join("switchyard.db");
    let store =
        SqliteStore::open(&db_path).with_context(|| format!("open store {}", db_path.display()))?;
    tracing::info!(path = %db_path.display(), "store opened (SQLite)");
    let core = Core::new(Arc::new(store), &args.external_domain);

    match core
        .bootstrap(&Bootstrap::default())
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        BootstrapResult::AlreadyInitialized => tracing::info!("instance already initialized"),
        BootstrapResult::Created {
            org_id,
            admin_user_id,
            token,
        } => {
            let path = args
                .admin_pat_file
                .clone()
                .unwrap_or_else(|| args.data_dir.join("admin.pat"));
            crate::admin_pat::write(&path, &token)
                .with_context(|| format!("write admin token to {}", path.display()))?;
            tracing::info!(
                %org_id,
                %admin_user_id,
                path = %path.display(),
                "instance initialized: the admin's personal access token was written to the file"
            );
        }
    }

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ManagementServiceServer<ManagementService>>()
        .await;
    health_reporter
        .set_serving::<UserServiceServer<UserService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("build reflection v1")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("build reflection v1alpha")?;

    let routes = tonic::service::Routes::new(ManagementServiceServer::new(ManagementService::new(
        core.clone(),
    )))
    .add_service(UserServiceServer::new(UserService::new(core)))
    .add_service(health)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha);

    let options = GatewayOptions {
        rest_prefixes: args.rest_prefixes.clone(),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::new(switchyard_proto::descriptor_pool().clone(), options)
        .context("build the gateway's routes from the descriptors")?;
    let service = gateway.layer().layer(routes);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    // Tests and scripts wait for this line: it is printed once the socket accepts.
    tracing::info!(addr = %local, "listening (gRPC, gRPC-Web, Connect, REST; HTTP/1.1 and h2c)");
    switchyard_gateway::serve(listener, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

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
    tracing::info!("shutting down: finishing in-flight requests");
}
