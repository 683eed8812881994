//! `switchyard export`: writes a store's event log, then its projection rows, as JSON lines
//! (the format of `switchyard_core::store::log`), to stdout or a file. Run it on a stopped
//! node, or accept that writes made during the export may be missing from it.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use switchyard_core::store::log::LogLine;

/// Events read per page.
const PAGE: u32 = 1000;

/// Options of `switchyard export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Directory of the embedded SQLite store to export.
    #[arg(long, default_value = "./data", env = "SWITCHYARD_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// Export the PostgreSQL store at this URL instead.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub(crate) database_url: Option<String>,

    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
}

/// Runs the export.
pub(crate) async fn run(args: ExportArgs) -> anyhow::Result<()> {
    if args.database_url.is_none() {
        let path = args.data_dir.join("switchyard.db");
        anyhow::ensure!(path.exists(), "no store at {}", path.display());
    }
    let store = crate::store::open(args.database_url.as_deref(), &args.data_dir, false).await?;
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut events = 0usize;
    let mut after = 0;
    loop {
        let page = store.log(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.event.position;
        for entry in &page {
            serde_json::to_writer(&mut out, &LogLine::event(entry))?;
            out.write_all(b"\n")?;
        }
        events += page.len();
    }
    let rows = store.projections().await?;
    for line in rows.iter().filter_map(LogLine::row) {
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    if let Some(path) = &args.output {
        std::fs::File::open(path)?.sync_all()?;
    }
    eprintln!("exported {events} events and {} rows", rows.len());
    Ok(())
}
