//! `switchyard serve`: opens the store, bootstraps the first admin, and serves the tonic
//! services behind the gateway on one port (gRPC, gRPC-Web, Connect and REST all reach the same
//! in-process handlers).

use anyhow::Context as _;
use switchyard_core::command::{Bootstrap, BootstrapResult, Core};
use switchyard_core::service::{ManagementService, UserService};
use switchyard_gateway::{Gateway, GatewayOptions, Metrics};
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementServiceServer;
use switchyard_proto::zitadel::user::v2::user_service_server::UserServiceServer;
use tower::Layer as _;

use crate::config::Config;

/// The JWT verifier `[jwt]` asks for, if any.
async fn jwt_verifier(
    jwt: &crate::config::Jwt,
) -> anyhow::Result<Option<std::sync::Arc<switchyard_core::auth::jwt::JwtVerifier>>> {
    use switchyard_core::auth::jwt::{JwksSource, JwtSettings, JwtVerifier};
    let Some(issuer) = jwt.issuer.clone() else {
        anyhow::ensure!(
            jwt.jwks_file.is_none() && jwt.jwks_url.is_none(),
            "jwt: a JWKS is configured but jwt.issuer is not set"
        );
        return Ok(None);
    };
    let jwks = match (&jwt.jwks_file, &jwt.jwks_url) {
        (Some(file), None) => JwksSource::File(file.clone()),
        (None, Some(url)) => JwksSource::Url(url.clone()),
        _ => anyhow::bail!("jwt: set exactly one of jwt.jwks_file and jwt.jwks_url"),
    };
    anyhow::ensure!(
        !jwt.audience.is_empty(),
        "jwt: jwt.audience must name at least one audience"
    );
    let settings = JwtSettings {
        jwks,
        issuer,
        audience: jwt.audience.clone(),
    };
    let verifier = JwtVerifier::new(settings)
        .await
        .map_err(|e| anyhow::anyhow!("jwt: {e}"))?;
    tracing::info!("JWT access tokens accepted");
    Ok(Some(std::sync::Arc::new(verifier)))
}

/// Checks a call's `authorization` before the gateway reads its body; the caller found rides
/// to the handler in the request's extensions, so each call is authenticated once.
fn authenticator(core: Core) -> switchyard_gateway::Authenticator {
    std::sync::Arc::new(move |metadata: &http::HeaderMap| {
        let core = core.clone();
        let values: Vec<http::HeaderValue> = metadata
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .cloned()
            .collect();
        Box::pin(async move {
            let values: Vec<&[u8]> = values.iter().map(http::HeaderValue::as_bytes).collect();
            let caller = switchyard_core::service::authenticate(&core, &values).await?;
            let mut extensions = tonic::Extensions::default();
            extensions.insert(caller);
            Ok(extensions)
        })
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(args: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    let store = crate::store::open_kind(
        args.store,
        args.database_url.as_deref(),
        &args.data_dir,
        args.group_commit,
    )
    .await?;
    let mut core = Core::new(store, &args.external_domain);
    if args.database_url.is_some() {
        // Nodes sharing a database must see a token's removal or its user's deactivation on
        // the next request: only a single-process store (SQLite, memory) caches verified
        // tokens, where every change goes through this process and invalidates the cache.
        core = core.with_token_cache_ttl(std::time::Duration::ZERO);
    }
    if let Some(verifier) = jwt_verifier(&args.jwt).await? {
        core = core.with_jwt(verifier);
    }

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
    // Reflection lists health and itself too, and answers unknown symbols in-stream.
    let reflected = crate::reflection::pool().context("reflection descriptors")?;
    let reflection_v1 = crate::reflection::v1::server(reflected.clone());
    let reflection_v1alpha = crate::reflection::v1alpha::server(reflected);

    let probe = crate::ops::store_probe(core.clone());
    let handlers = crate::handlers::handlers(&core);
    let routes = tonic::service::Routes::new(ManagementServiceServer::new(ManagementService::new(
        core.clone(),
    )))
    .add_service(UserServiceServer::new(UserService::new(core.clone())))
    .add_service(health)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha);

    // The gateway knows health and reflection too, so that every protocol reaches them.
    let mut pool = switchyard_proto::descriptor_pool().clone();
    for set in [
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        pool.decode_file_descriptor_set(set)
            .context("add the health and reflection descriptors")?;
    }
    let base = GatewayOptions {
        rest_prefixes: args
            .rest_prefixes
            .iter()
            .map(|(service, prefix)| (service.clone(), prefix.trim_end_matches('/').to_owned()))
            .collect(),
        openapi: true,
        openapi_options: crate::openapi_cmd::zitadel_openapi(),
        ..GatewayOptions::default()
    };
    let options = crate::ops::gateway_options(&args, base);
    let metrics = std::sync::Arc::new(Metrics::new());
    // Unary calls go to the handlers in-process; streaming ones (health `Watch`, reflection)
    // through the tonic routes.
    let gateway = Gateway::new(pool, options)
        .context("build the gateway's routes from the descriptors")?
        .with_handlers(handlers)
        .with_authenticator(authenticator(core.clone()))
        .with_metrics(std::sync::Arc::clone(&metrics));
    let service = gateway.layer().layer(routes);
    crate::ops::serve(&args, service, probe, metrics).await
}
