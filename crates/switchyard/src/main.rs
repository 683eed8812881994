//! The `switchyard` binary: command-line parsing and logging set-up; `serve` does the wiring.

mod admin_pat;
mod admin_recover;
mod config;
mod export_cmd;
mod gateway_cmd;
mod handlers;
mod import_cmd;
mod openapi_cmd;
mod ops;
mod reflection;
mod serve;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: glibc's malloc/free were ~24 % of the instructions of a
/// REST call (BENCHMARKS.md, "Protocols"); the request path allocates many small short-lived
/// buffers, which mimalloc's thread-local free lists serve much more cheaply.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: one port serving gRPC, gRPC-Web, Connect and JSON REST (from google.api.http
/// annotations) for a ZITADEL-compatible user-management API.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the user-management API on one port, over every protocol.
    Serve(ServeArgs),
    /// Check, print or document the configuration of `serve` and `gateway` (one TOML file).
    Config(ConfigArgs),
    /// Front any gRPC upstream: REST (from google.api.http), gRPC, gRPC-Web and Connect on
    /// one port, driven by descriptors (a descriptor set, .proto files, or reflection).
    Gateway(gateway_cmd::GatewayArgs),
    /// Print the OpenAPI 3.1 document of the REST routes (the same as GET /openapi.json).
    Openapi(openapi_cmd::OpenapiArgs),
    /// Write a store's event log and projection rows as JSON lines.
    Export(export_cmd::ExportArgs),
    /// Load an export into an empty store (SQLite or PostgreSQL), replaying every user.
    Import(import_cmd::ImportArgs),
    /// Offline administration of a store (`admin recover`: a new instance-owner token).
    Admin(admin_recover::AdminArgs),
}

/// Options of `switchyard serve`. Each flag overrides the key of the same name in the
/// configuration file and its `SWITCHYARD_…` environment variable (see `switchyard config
/// reference`).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML). Default: `config/switchyard.toml` when it exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on: HTTP/1.1 and HTTP/2 (h2c; h2 with TLS) share it. [key: listen]
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,

    /// Second address serving only /metrics, /healthz and /readyz. [key: admin_listen]
    #[arg(long)]
    pub(crate) admin_listen: Option<SocketAddr>,

    /// Directory of the embedded SQLite store (created if missing). On first start the admin's
    /// personal access token is written here as `admin.pat`. [key: data_dir]
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,

    /// Use PostgreSQL (`postgres://user@host:port/db`) instead of the embedded SQLite store;
    /// many `serve` processes may share one database. The first to start on an empty database
    /// creates the instance and writes `admin.pat`; the others find it created and write none.
    /// [key: database_url]
    #[arg(long)]
    pub(crate) database_url: Option<String>,

    /// The event store: `sqlite` (durable; PostgreSQL with --database-url) or `memory` (lost
    /// on exit: benchmarks and tests). [key: store]
    #[arg(long, value_enum)]
    pub(crate) store: Option<store::StoreKind>,

    /// Batch concurrent commits into one durable transaction (group commit). `false` commits
    /// each command in its own transaction. [key: group_commit]
    #[arg(long, action = clap::ArgAction::Set)]
    pub(crate) group_commit: Option<bool>,

    /// Where to write the first admin's personal access token instead of `<data-dir>/admin.pat`.
    /// [key: admin_pat_file]
    #[arg(long)]
    pub(crate) admin_pat_file: Option<PathBuf>,

    /// The instance's domain: organization domains are `<org-name>.<external-domain>`.
    /// [key: external_domain]
    #[arg(long)]
    pub(crate) external_domain: Option<String>,

    /// Mount a service's REST routes under a path prefix, as `SERVICE=PREFIX`; repeatable;
    /// replaces the configured prefixes. Services without one are served at their annotation
    /// paths. [key: rest_prefixes]
    #[arg(long = "rest-prefix", value_name = "SERVICE=PREFIX", value_parser = parse_prefix)]
    pub(crate) rest_prefixes: Vec<(String, String)>,

    /// Log format on stderr. [key: log.format]
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

impl ServeArgs {
    /// The effective configuration: the file, then the environment, then these flags.
    ///
    /// # Errors
    ///
    /// What [`config::Config::load`] finds wrong.
    pub(crate) fn load(&self) -> anyhow::Result<config::Config> {
        let mut config = config::Config::load(self.config.as_deref(), std::env::vars())?;
        let flags = self;
        if let Some(v) = flags.listen {
            config.listen = v;
        }
        if let Some(v) = flags.admin_listen {
            config.admin_listen = Some(v);
        }
        if let Some(v) = &flags.data_dir {
            config.data_dir.clone_from(v);
        }
        if let Some(v) = &flags.database_url {
            config.database_url = Some(v.clone());
        }
        if let Some(v) = flags.store {
            config.store = v;
        }
        if let Some(v) = flags.group_commit {
            config.group_commit = v;
        }
        if let Some(v) = &flags.admin_pat_file {
            config.admin_pat_file = Some(v.clone());
        }
        if let Some(v) = &flags.external_domain {
            config.external_domain.clone_from(v);
        }
        if !flags.rest_prefixes.is_empty() {
            config.rest_prefixes = flags.rest_prefixes.iter().cloned().collect();
        }
        if let Some(v) = flags.log_format {
            config.log.format = v;
        }
        Ok(config)
    }
}

/// `switchyard config …`.
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration (file and `SWITCHYARD_…` environment); exit 2 naming the
    /// first bad key. With gateway descriptor files, also load them and build the REST routes.
    Check {
        /// The configuration file. Default: `config/switchyard.toml` when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML (secrets masked).
    Print {
        /// The configuration file. Default: `config/switchyard.toml` when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the Markdown reference of every key (the README's table).
    Reference,
    /// Print the commented example file (the shipped `config/switchyard.toml`).
    Example,
}

/// Stops start-up on a bad configuration: the message alone (it names the key, the value and
/// what was expected), exit status 2.
fn config_failed(err: &dyn std::fmt::Display) -> ! {
    eprintln!("switchyard: invalid configuration: {err}");
    std::process::exit(2)
}

fn run_config(args: ConfigArgs) -> anyhow::Result<()> {
    match args.action {
        ConfigAction::Check { config } => {
            let path = config.as_deref();
            let config = match config::Config::load(path, std::env::vars()) {
                Ok(config) => config,
                Err(err) => config_failed(&err),
            };
            let gateway = match gateway_cmd::check(&config) {
                Ok(summary) => summary,
                Err(err) => config_failed(&format!("{err:#}")),
            };
            println!(
                "{}: ok",
                path.map_or(config::DEFAULT_PATH.into(), |p| p.display().to_string())
            );
            if let Some(summary) = gateway {
                println!("{summary}");
            }
        }
        ConfigAction::Print { config } => {
            print!(
                "{}",
                config::Config::load(config.as_deref(), std::env::vars())?.print()
            );
        }
        ConfigAction::Reference => print!("{}", config::Config::reference()),
        ConfigAction::Example => print!("{}", config::Config::example()),
    }
    Ok(())
}

/// How log lines are written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_prefix(value: &str) -> Result<(String, String), String> {
    let (service, prefix) = value
        .split_once('=')
        .ok_or_else(|| format!("expected SERVICE=PREFIX, got {value:?}"))?;
    if service.is_empty() || !prefix.starts_with('/') {
        return Err(format!("expected SERVICE=/prefix, got {value:?}"));
    }
    Ok((service.to_owned(), prefix.trim_end_matches('/').to_owned()))
}

/// Logging with `default_filter` unless `RUST_LOG` is set.
fn init_logging_with(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only for a terminal: files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match args.load() {
                Ok(config) => config,
                Err(err) => config_failed(&err),
            };
            init_logging_with(config.log.format, &config.log.filter);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::run(config))
        }
        Command::Config(args) => run_config(args),
        Command::Gateway(args) => {
            let config = match args.load() {
                Ok(config) => config,
                Err(err) => config_failed(&err),
            };
            init_logging_with(config.log.format, &config.log.filter);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(gateway_cmd::run(config))
        }
        Command::Openapi(args) => openapi_cmd::run(args),
        Command::Export(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(export_cmd::run(args)),
        Command::Import(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(import_cmd::run(args)),
        Command::Admin(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(admin_recover::run(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_lose_trailing_slashes() {
        assert_eq!(
            parse_prefix("a.B=/x/y/").expect("valid"),
            ("a.B".to_owned(), "/x/y".to_owned())
        );
        assert!(parse_prefix("a.B").is_err());
        assert!(parse_prefix("a.B=x").is_err());
        assert!(parse_prefix("=/x").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
