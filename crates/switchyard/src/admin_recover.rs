//! `switchyard admin recover`: for an instance nobody can administer any more, opens the store
//! offline (no server needed), creates a new IAM_OWNER machine user with a personal access
//! token and writes the token to a file (mode 0600), as the first start does. Whoever can run
//! it can already read the store: it grants nothing a local operator does not have.

use std::path::PathBuf;

use anyhow::Context as _;
use switchyard_core::command::Core;

/// Options of `switchyard admin`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    #[command(subcommand)]
    pub(crate) action: AdminAction,
}

/// What `switchyard admin` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminAction {
    /// Issue a new instance-owner token offline: a new IAM_OWNER machine user and its
    /// personal access token, written to `<data-dir>/admin.pat` (or `--admin-pat-file`).
    Recover(RecoverArgs),
}

/// Options of `switchyard admin recover`.
#[derive(Debug, clap::Args)]
pub(crate) struct RecoverArgs {
    /// Directory of the embedded SQLite store.
    #[arg(long, default_value = "./data", env = "SWITCHYARD_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// Recover the PostgreSQL store at this URL instead.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub(crate) database_url: Option<String>,

    /// Where to write the token instead of `<data-dir>/admin.pat`.
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_pat_file: Option<PathBuf>,
}

/// Runs `switchyard admin …`.
pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match args.action {
        AdminAction::Recover(args) => recover(args).await,
    }
}

async fn recover(args: RecoverArgs) -> anyhow::Result<()> {
    if args.database_url.is_none() {
        let path = args.data_dir.join("switchyard.db");
        anyhow::ensure!(path.exists(), "no store at {}", path.display());
    }
    let store = crate::store::open(args.database_url.as_deref(), &args.data_dir, false).await?;
    let core = Core::new(store, "localhost");
    let recovered = core
        .recover_owner()
        .await
        .map_err(|e| anyhow::anyhow!("recover: {e}"))?;
    let path = args
        .admin_pat_file
        .unwrap_or_else(|| args.data_dir.join("admin.pat"));
    crate::admin_pat::write(&path, &recovered.token)
        .with_context(|| format!("write the token to {}", path.display()))?;
    eprintln!(
        "created IAM_OWNER {} ({}) in org {}; its personal access token is in {}",
        recovered.username,
        recovered.user_id,
        recovered.org_id,
        path.display()
    );
    Ok(())
}
