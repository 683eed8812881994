//! `switchyard import`: loads an export (JSON lines) into an empty store of either backend —
//! e.g. from the embedded default to PostgreSQL. Every user's events are replayed and must give
//! the exported user row (owner, name, state, sequence, dates) before anything is written;
//! then the events and the rows go in, in one transaction.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use switchyard_core::store::log::Export;

/// Options of `switchyard import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The export to load (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub(crate) input: PathBuf,

    /// Directory of the embedded SQLite store to load into (created if missing).
    #[arg(long, default_value = "./data", env = "SWITCHYARD_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// Load into the PostgreSQL store at this URL instead (migrated if needed).
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
}

/// Runs the import.
pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let mut text = String::new();
    if args.input.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.input)
            .with_context(|| format!("read {}", args.input.display()))?;
    }
    let export = Export::parse(text.lines())?;
    let users = export.verify_users()?;
    if args.database_url.is_none() {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    }
    let store = crate::store::open(args.database_url.as_deref(), &args.data_dir, false).await?;
    anyhow::ensure!(
        store.log(0, 1).await?.is_empty() && !store.has_orgs().await?,
        "the target store is not empty: import only into a new one"
    );
    store.import(&export.entries, &export.writes).await?;
    eprintln!(
        "imported {} events and {} rows ({users} users replayed and checked)",
        export.entries.len(),
        export.writes.len()
    );
    Ok(())
}
