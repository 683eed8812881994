//! The `switchyard` binary: command-line parsing and logging set-up; `serve` does the wiring.

mod admin_pat;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
}

/// Options of `switchyard serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on: HTTP/1.1 and cleartext HTTP/2 (h2c) share it.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SWITCHYARD_LISTEN")]
    pub(crate) listen: SocketAddr,

    /// Directory of the embedded SQLite store (created if missing). On first start the admin's
    /// personal access token is written here as `admin.pat`.
    #[arg(long, default_value = "./data", env = "SWITCHYARD_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// Where to write the first admin's personal access token instead of `<data-dir>/admin.pat`.
    #[arg(long, env = "SWITCHYARD_ADMIN_PAT_FILE")]
    pub(crate) admin_pat_file: Option<PathBuf>,

    /// The instance's domain: organization domains are `<org-name>.<external-domain>`.
    #[arg(long, default_value = "localhost", env = "SWITCHYARD_EXTERNAL_DOMAIN")]
    pub(crate) external_domain: String,

    /// Mount a service's REST routes under a path prefix, as `SERVICE=PREFIX`; repeatable.
    /// Services without one are served at their annotation paths.
    #[arg(
        long = "rest-prefix",
        value_name = "SERVICE=PREFIX",
        default_value = "zitadel.management.v1.ManagementService=/management/v1",
        value_parser = parse_prefix
    )]
    pub(crate) rest_prefixes: Vec<(String, String)>,

    /// Log format on stderr.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
            init_logging(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::run(args))
        }
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
