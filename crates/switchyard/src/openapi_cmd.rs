//! `switchyard openapi`: prints the OpenAPI 3.1 document of a set of descriptors' REST routes
//! (the same document the gateway serves at `GET /openapi.json`).
//!
//! Without a descriptor source it describes Switchyard's own API with `serve`'s default
//! prefixes. Rendering is `switchyard_transcode::openapi`'s.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use switchyard_gateway::{Gateway, GatewayOptions};

/// Options of `switchyard openapi`.
#[derive(Debug, clap::Args)]
pub(crate) struct OpenapiArgs {
    /// A FileDescriptorSet (`protoc --include_imports --descriptor_set_out`).
    #[arg(long, value_name = "FILE")]
    pub(crate) descriptor_set: Option<PathBuf>,

    /// A `.proto` file to compile (relative to a `--proto-path`); repeatable.
    #[arg(long = "proto", value_name = "FILE")]
    pub(crate) protos: Vec<PathBuf>,

    /// An import directory for `--proto`; repeatable.
    #[arg(long = "proto-path", value_name = "DIR")]
    pub(crate) proto_paths: Vec<PathBuf>,

    /// Mount a service's REST routes under a path prefix, as `SERVICE=PREFIX`; repeatable.
    #[arg(long = "rest-prefix", value_name = "SERVICE=PREFIX", value_parser = crate::parse_prefix)]
    pub(crate) rest_prefixes: Vec<(String, String)>,
}

/// Prints the document on stdout.
pub(crate) fn run(args: OpenapiArgs) -> anyhow::Result<()> {
    let own_api = args.descriptor_set.is_none() && args.protos.is_empty();
    let (pool, prefixes) = if own_api {
        let mut prefixes = args.rest_prefixes.clone();
        if prefixes.is_empty() {
            prefixes.push((
                "zitadel.management.v1.ManagementService".to_owned(),
                "/management/v1".to_owned(),
            ));
        }
        (switchyard_proto::descriptor_pool().clone(), prefixes)
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let pool = runtime.block_on(crate::gateway_cmd::load_pool(
            args.descriptor_set.as_deref(),
            &args.protos,
            &args.proto_paths,
            None,
        ))?;
        (pool, args.rest_prefixes.clone())
    };
    let openapi_options = if own_api {
        zitadel_openapi()
    } else {
        switchyard_transcode::openapi::OpenApiOptions::default()
    };
    let options = GatewayOptions {
        rest_prefixes: prefixes,
        openapi_options,
        ..GatewayOptions::default()
    };
    let gateway = Gateway::new(pool, options).context("build the REST routes")?;
    let text = serde_json::to_string_pretty(&gateway.openapi())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// The OpenAPI additions for Switchyard's own (ZITADEL) API: the management v1 service reads
/// the `x-zitadel-orgid` header on every call, as ZITADEL does.
pub(crate) fn zitadel_openapi() -> switchyard_transcode::openapi::OpenApiOptions {
    switchyard_transcode::openapi::OpenApiOptions {
        title: Some("Switchyard: ZITADEL management v1 and user v2".to_owned()),
        headers: vec![(
            "zitadel.management.v1.ManagementService".to_owned(),
            switchyard_transcode::openapi::HeaderParameter {
                name: "x-zitadel-orgid".to_owned(),
                description: "The organization the call acts in (default: the caller's own); \
                              the caller needs the permission there."
                    .to_owned(),
                required: false,
            },
        )],
        ..switchyard_transcode::openapi::OpenApiOptions::default()
    }
}
