//! Opens the event store a command-line names: PostgreSQL for a `--database-url`, otherwise the
//! embedded SQLite file in the data directory, or (`store = "memory"`, `serve` only) a store
//! in memory. Shared by `serve`, `export` and `import`.
//!
//! The data directory and the SQLite files hold password and token hashes and personal data:
//! whatever the umask, the directory is made 0700 and the database files (`switchyard.db`,
//! `-wal`, `-shm`) 0600 when the store is opened.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use switchyard_core::store::EventStore;
use switchyard_core::store::postgres::{PostgresOptions, PostgresStore};
use switchyard_core::store::sqlite::{SqliteOptions, SqliteStore};

/// Which event store `serve` uses (config key `store`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// SQLite in the data directory, or PostgreSQL when `database_url` is set: durable.
    #[default]
    Sqlite,
    /// In memory, not durable: benchmarks and tests.
    Memory,
}

/// Opens the store `kind` names: for [`StoreKind::Memory`] an empty in-memory store (a
/// `database_url` is then an error), otherwise as [`open`].
///
/// # Errors
///
/// As [`open`]; a `database_url` together with the memory store.
pub(crate) async fn open_kind(
    kind: StoreKind,
    database_url: Option<&str>,
    data_dir: &Path,
    group_commit: bool,
) -> anyhow::Result<Arc<dyn EventStore>> {
    // Every kind keeps the first admin's token file in the data directory.
    private_dir(data_dir)?;
    match kind {
        StoreKind::Memory => {
            anyhow::ensure!(
                database_url.is_none(),
                "store = \"memory\" and database_url are exclusive"
            );
            tracing::warn!("store opened (in memory): nothing survives a restart");
            Ok(Arc::new(switchyard_core::store::memory::MemoryStore::new()))
        }
        StoreKind::Sqlite => open(database_url, data_dir, group_commit).await,
    }
}

/// Opens (and migrates) the store: PostgreSQL at `database_url` if given, else
/// `<data_dir>/switchyard.db`.
pub(crate) async fn open(
    database_url: Option<&str>,
    data_dir: &Path,
    group_commit: bool,
) -> anyhow::Result<Arc<dyn EventStore>> {
    if let Some(url) = database_url {
        let options = PostgresOptions {
            group_commit,
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect_with(url, options)
            .await
            // The URL may carry a password: name only the host part.
            .with_context(|| format!("open PostgreSQL store at {}", redact(url)))?;
        tracing::info!(url = %redact(url), group_commit, "store opened (PostgreSQL)");
        return Ok(Arc::new(store));
    }
    let path = data_dir.join("switchyard.db");
    private_dir(data_dir)?;
    // SQLite creates the database with 0644 less the umask and gives `-wal` and `-shm` the
    // database file's mode: create it owner-only first, then fix any files an older version
    // left readable.
    private_file(&path, true)?;
    let store = SqliteStore::open_with(&path, SqliteOptions { group_commit })
        .with_context(|| format!("open store {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        private_file(Path::new(&name), false)?;
    }
    tracing::info!(path = %path.display(), group_commit, "store opened (SQLite)");
    Ok(Arc::new(store))
}

/// Creates `dir` (and its parents) if missing and makes it accessible to its owner only.
///
/// # Errors
///
/// When the directory cannot be created or its mode set.
pub(crate) fn private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("create data dir {}", dir.display()))?;
    set_mode(dir, 0o700)
}

/// Makes `path` readable and writable by its owner only; creates it (empty) when `create`,
/// else leaves a missing file alone.
fn private_file(path: &Path, create: bool) -> anyhow::Result<()> {
    if create {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        options
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
    } else if !path.exists() {
        return Ok(());
    }
    set_mode(path, 0o600)
}

/// Sets the permission bits of `path` (a no-op off Unix).
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("make {} private (mode {mode:o})", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// `url` without its user-info (user and password).
pub(crate) fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
        (Some(_), None) => url.to_owned(),
        // A `key=value` connection string may hold a password anywhere.
        (None, _) => "(connection string)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_dir_and_file_are_owner_only_even_if_they_existed() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let file = dir.join("switchyard.db");
        std::fs::write(&file, b"").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        private_dir(&dir).expect("private dir");
        private_file(&file, true).expect("private file");
        private_file(&dir.join("missing-wal"), false).expect("missing is fine");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(!dir.join("missing-wal").exists());
    }

    #[test]
    fn redact_hides_credentials() {
        let cases = [
            ("postgres://u:secret@db:5432/x", "postgres://…@db:5432/x"),
            ("postgres://db/x", "postgres://db/x"),
            ("host=db password=x", "(connection string)"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }
}
