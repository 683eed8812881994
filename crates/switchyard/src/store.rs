//! Opens the event store a command-line names: PostgreSQL for a `--database-url`, otherwise the
//! embedded SQLite file in the data directory, or (`store = "memory"`, `serve` only) a store
//! in memory. Shared by `serve`, `export` and `import`.

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
    let store = SqliteStore::open_with(&path, SqliteOptions { group_commit })
        .with_context(|| format!("open store {}", path.display()))?;
    tracing::info!(path = %path.display(), group_commit, "store opened (SQLite)");
    Ok(Arc::new(store))
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
