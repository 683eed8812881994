//! The configuration of `serve` and `gateway`: one TOML file, every key overridable by a
//! `SWITCHYARD_…` environment variable, command-line flags over both.
//!
//! The types here are the single source of truth: the [`config_section!`] macro that declares
//! them also records each key's name, type, default and doc comment, from which come the
//! environment-variable names, the unknown-key check, `switchyard config reference` (the
//! README's table) and `switchyard config example` (the shipped `config/switchyard.toml`).
//! Both modes read the whole file: `serve` ignores `[gateway]`, `gateway` the store's keys and
//! `[jwt]`. The `[gateway]` tables are in [`gateway`]; refusing the old JSON gateway file (with
//! its TOML translation) in `legacy_json`. Turning the values into gateway and server options
//! is the job of `crate::serve`, `crate::gateway_cmd` and `crate::ops`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LogFormat;

/// Where `serve` and `gateway` look for their configuration when `--config` is not given. A
/// missing default file means "all defaults"; a missing explicit file is an error.
pub(crate) const DEFAULT_PATH: &str = "config/switchyard.toml";

/// The prefix of every environment variable that overrides a key.
const ENV_PREFIX: &str = "SWITCHYARD_";

/// How a key's value is written in an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `true` or `false`.
    Bool,
    /// A decimal integer.
    Int,
    /// Comma-separated strings.
    List,
    /// Comma-separated `KEY=VALUE` pairs.
    Map,
    /// Anything else: the text as is.
    Str,
}

impl Kind {
    /// The kind of a Rust type, from its spelling in the declaration.
    fn of(ty: &str) -> Self {
        let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
        let inner = ty
            .strip_prefix("Option<")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(&ty);
        match inner {
            "bool" => Self::Bool,
            "u16" | "u32" | "u64" | "usize" => Self::Int,
            t if t.starts_with("Vec<") => Self::List,
            t if t.starts_with("BTreeMap<") => Self::Map,
            _ => Self::Str,
        }
    }

    /// What a value of this kind looks like, for error messages and the reference.
    fn expected(self) -> &'static str {
        match self {
            Self::Bool => "true or false",
            Self::Int => "a non-negative integer",
            Self::List => "a list of strings",
            Self::Map => "a table of strings",
            Self::Str => "a string",
        }
    }
}

/// One documented key, as declared.
#[derive(Debug, Clone)]
pub(crate) struct KeyDoc {
    /// The TOML table it lives in (`gateway.json`); empty for top-level keys. Inside a table of
    /// named entries the name is a placeholder: `gateway.services.<SERVICE>`.
    section: String,
    /// The key's name inside its table.
    name: &'static str,
    kind: Kind,
    /// The default, as TOML, or `None` when unset by default.
    default: Option<String>,
    /// The doc comment, one entry per line.
    doc: &'static [&'static str],
    /// Whether the value is masked by `config print`.
    secret: bool,
    /// Inside a named entry (`[gateway.services."<SERVICE>"]`): set in the file only, no
    /// environment variable.
    per_entry: bool,
}

impl KeyDoc {
    /// `section.name`, or `name` for a top-level key.
    fn path(&self) -> String {
        join(&self.section, self.name)
    }

    /// The environment variable that overrides this key; none inside a named entry.
    fn env(&self) -> Option<String> {
        (!self.per_entry)
            .then(|| format!("{ENV_PREFIX}{}", self.path().replace('.', "_")).to_ascii_uppercase())
    }

    /// The doc comment as one paragraph.
    fn text(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One table of the configuration, as declared.
#[derive(Debug, Clone)]
pub(crate) struct SectionDoc {
    /// Where it sits (`gateway.json`, `gateway.services.<SERVICE>`).
    path: String,
    /// Its doc comment, one entry per line.
    doc: &'static [&'static str],
    /// For the tables of named entries: the table holding them (`gateway.services`).
    entries_in: Option<String>,
}

/// Every key and table of the configuration, in declaration order.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    keys: Vec<KeyDoc>,
    sections: Vec<SectionDoc>,
}

impl Schema {
    /// The names a table at `pattern` may hold: its keys, then its sub-tables.
    fn names_in(&self, pattern: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .keys
            .iter()
            .filter(|k| k.section == pattern)
            .map(|k| k.name)
            .collect();
        for section in &self.sections {
            let path = section.entries_in.as_deref().unwrap_or(&section.path);
            if let Some(name) = child_name(path, pattern) {
                names.push(name);
            }
        }
        names
    }
}

/// `parent.name`, or `name` at the top.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// [`join`] for a name as the file spells it: quoted unless it is a bare TOML key
/// (`gateway.services."a.v1.Service"`).
fn join_quoted(parent: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        join(parent, name)
    } else {
        join(parent, &format!("{name:?}"))
    }
}

/// The last part of `path` if it is directly below `parent`.
fn child_name<'a>(path: &'a str, parent: &str) -> Option<&'a str> {
    let rest = if parent.is_empty() {
        path
    } else {
        path.strip_prefix(parent)?.strip_prefix('.')?
    };
    (!rest.contains('.')).then_some(rest)
}

/// The default of a key as TOML text, or `None` when it has none (an unset `Option`).
fn render_default<T: Serialize>(value: &T) -> Option<String> {
    toml::Value::try_from(value).ok().map(|v| v.to_string())
}

/// Declares one table of the configuration: the struct (serde, `deny_unknown_fields`, every
/// key optional), its `Default`, and `describe()`, the documentation of its keys and tables.
/// `#[secret = true]` marks a key whose value `config print` masks. `sections` are fixed
/// sub-tables, `entries` tables of named entries (`upstreams["<NAME>"]: T` is
/// `[….upstreams.NAME]`, one `T` per name).
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[secret = $secret:literal])?
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
        $(sections { $( $sec:ident : $secty:ident ),* $(,)? })?
        $(entries { $( $ent:ident [$placeholder:literal] : $entty:ident ),* $(,)? })?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub(crate) struct $name {
            $( $(#[doc = $doc])* pub(crate) $field: $ty, )*
            $($(
                #[doc = concat!("The `", stringify!($sec), "` table.")]
                pub(crate) $sec: $secty,
            )*)?
            $($(
                #[doc = concat!("The `", stringify!($ent), ".", $placeholder, "` tables, by name.")]
                #[serde(skip_serializing_if = "BTreeMap::is_empty")]
                pub(crate) $ent: BTreeMap<String, $entty>,
            )*)?
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $($( $sec: $secty::default(), )*)?
                    $($( $ent: BTreeMap::new(), )*)?
                }
            }
        }

        impl $name {
            /// This table's doc comment.
            #[allow(dead_code)]
            pub(crate) const DOC: &'static [&'static str] = &[$($sdoc),*];

            /// Adds this table's keys, then its sub-tables', to `schema`: the table sits at
            /// `path`, inside a named entry when `per_entry`.
            pub(crate) fn describe(path: &str, per_entry: bool, schema: &mut Schema) {
                let defaults = Self::default();
                $(
                    schema.keys.push(KeyDoc {
                        section: path.to_owned(),
                        name: stringify!($field),
                        kind: Kind::of(stringify!($ty)),
                        default: render_default(&defaults.$field),
                        doc: &[$($doc),*],
                        secret: false $(|| $secret)?,
                        per_entry,
                    });
                )*
                $($(
                    let sub = join(path, stringify!($sec));
                    schema.sections.push(SectionDoc {
                        path: sub.clone(),
                        doc: $secty::DOC,
                        entries_in: None,
                    });
                    $secty::describe(&sub, per_entry, schema);
                )*)?
                $($(
                    let table = join(path, stringify!($ent));
                    let sub = join(&table, $placeholder);
                    schema.sections.push(SectionDoc {
                        path: sub.clone(),
                        doc: $entty::DOC,
                        entries_in: Some(table),
                    });
                    $entty::describe(&sub, true, schema);
                )*)?
            }
        }
    };
}

mod duration;
mod gateway;
mod legacy_json;

pub(crate) use duration::Dur;
pub(crate) use gateway::Gateway;

config_section! {
    /// Switchyard's configuration (`switchyard serve` and `switchyard gateway`).
    Config {
        /// Address of the main port: gRPC, gRPC-Web, Connect and REST, over HTTP/1.1 and
        /// HTTP/2 (h2c, and h2 over TLS when `[tls]` is set).
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
        /// Optional second address serving only `/metrics`, `/healthz` and `/readyz` (they are
        /// on the main port too). It keeps answering while the main port drains.
        admin_listen: Option<SocketAddr> = None,
        /// Directory of the embedded SQLite store (created if missing); the first admin's
        /// personal access token is written here as `admin.pat`.
        data_dir: PathBuf = PathBuf::from("./data"),
        /// PostgreSQL instead of the embedded store, as `postgres://user:password@host:port/db`;
        /// many `serve` processes may share one database. Masked by `config print`.
        #[secret = true]
        database_url: Option<String> = None,
        /// The event store: `sqlite` (durable, in `data_dir`; PostgreSQL when `database_url`
        /// is set) or `memory` (kept in memory only, lost on exit: benchmarks and tests).
        store: crate::store::StoreKind = crate::store::StoreKind::Sqlite,
        /// Batch concurrent commits into one durable transaction (group commit).
        group_commit: bool = true,
        /// Where to write the first admin's token instead of `<data_dir>/admin.pat`.
        admin_pat_file: Option<PathBuf> = None,
        /// The instance's domain: organization domains are `<org-name>.<external_domain>`.
        external_domain: String = "localhost".to_owned(),
        /// REST path prefix per service (`SERVICE = "/prefix"`); services not listed are served
        /// at their annotation paths. Environment: `SERVICE=/prefix,SERVICE=/prefix`.
        rest_prefixes: BTreeMap<String, String> = BTreeMap::from([(
            "zitadel.management.v1.ManagementService".to_owned(),
            "/management/v1".to_owned(),
        )]),
    }
    sections {
        log: Log,
        limits: Limits,
        shutdown: Shutdown,
        cors: Cors,
        tls: Tls,
        jwt: Jwt,
        gateway: Gateway,
    }
}

config_section! {
    /// Logging on stderr.
    Log {
        /// `text` (human-readable) or `json` (one object per line).
        format: LogFormat = LogFormat::Text,
        /// Which events to log, as `RUST_LOG` would say it (`RUST_LOG` wins when set); access
        /// lines (one per call) are at target `switchyard::access`.
        filter: String = "info".to_owned(),
    }
}

config_section! {
    /// Limits that protect the server from large or slow clients.
    Limits {
        /// Largest request body or message, in bytes, before and after gzip inflation
        /// (checked while inflating). A larger REST body gets 413 with a JSON error, a larger
        /// gRPC-family message RESOURCE_EXHAUSTED; the message names the limit.
        max_body_bytes: usize = 4 * 1024 * 1024,
        /// Time a client has to send a request's headers (HTTP/1.1) or its first bytes; a
        /// slower one is disconnected (slowloris).
        header_read_timeout: Dur = Dur::secs(10),
        /// Time a request body (for a gRPC or Connect stream: its first message) has to
        /// arrive, plus a second per `body_min_rate` bytes received; a later one is answered
        /// 408 / DEADLINE_EXCEEDED, logged, and its call ended. `0s` disables.
        body_read_timeout: Dur = Dur::secs(5),
        /// Bytes per second: each this many bytes of a request body received extend its
        /// deadline by a second, so a client sending at least this fast is never cut off.
        body_min_rate: u64 = 1024,
        /// A connection with no call in flight (a streaming call is in flight until its
        /// response ends) for this long is closed, HTTP/2 with GOAWAY.
        idle_timeout: Dur = Dur::secs(120),
        /// Most concurrent HTTP/2 streams (calls) per connection.
        max_concurrent_streams: u32 = 200,
        /// Most open connections; further clients wait in the listen backlog.
        max_connections: usize = 10_000,
        /// Deadline of calls whose client sent none (`grpc-timeout`, `connect-timeout-ms`);
        /// unset means none.
        request_timeout: Option<Dur> = None,
    }
}

config_section! {
    /// Graceful shutdown on SIGTERM or SIGINT.
    Shutdown {
        /// After the signal, `/readyz` fails at once but the port keeps accepting for this long,
        /// so that load balancers stop sending before it closes.
        drain_delay: Dur = Dur::secs(0),
        /// Then the port stops accepting, HTTP/2 clients get GOAWAY, and in-flight calls have
        /// this long to finish before the process exits.
        grace_period: Dur = Dur::secs(30),
    }
}

config_section! {
    /// CORS for browsers (gRPC-Web, Connect, REST).
    Cors {
        /// Origins allowed to call from a browser (`https://app.example.com`); empty allows
        /// none, `["*"]` allows any.
        allowed_origins: Vec<String> = Vec::new(),
        /// Request headers allowed beyond those gRPC-Web and Connect need (`authorization`,
        /// `content-type`, `connect-*`, `grpc-timeout`, `x-grpc-web`, `x-user-agent`,
        /// `x-zitadel-orgid`, `x-request-id`, and for compression `content-encoding`,
        /// `connect-content-encoding`, `connect-accept-encoding`, `grpc-encoding`,
        /// `grpc-accept-encoding`).
        allowed_headers: Vec<String> = Vec::new(),
        /// Response headers exposed beyond `grpc-status`, `grpc-message`,
        /// `grpc-status-details-bin`, `x-request-id` and the compression headers
        /// (`content-encoding`, `connect-content-encoding`, `connect-accept-encoding`,
        /// `grpc-encoding`, `grpc-accept-encoding`).
        exposed_headers: Vec<String> = Vec::new(),
        /// How long a browser may cache a preflight answer.
        max_age: Dur = Dur::secs(7200),
    }
}

config_section! {
    /// JWT access tokens from an external identity provider, accepted beside personal access
    /// tokens when `issuer` and one of `jwks_file` / `jwks_url` are set. Signatures: RS256,
    /// ES256, EdDSA; `sub` is the user id; `exp` and `nbf` allow 60 s of clock skew.
    Jwt {
        /// The required `iss` claim.
        issuer: Option<String> = None,
        /// Accepted `aud` values (one must match).
        audience: Vec<String> = Vec::new(),
        /// A JSON Web Key Set file; re-read when a token names an unknown `kid`.
        jwks_file: Option<PathBuf> = None,
        /// A JSON Web Key Set URL (https); fetched at start and when an unknown `kid` arrives.
        jwks_url: Option<String> = None,
    }
}

config_section! {
    /// TLS on the main port (rustls). ALPN offers `h2` and `http/1.1`.
    Tls {
        /// PEM certificate chain; TLS is on when this and `key_file` are set. Both files are
        /// re-read on SIGHUP.
        cert_file: Option<PathBuf> = None,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1).
        key_file: Option<PathBuf> = None,
        /// PEM CA certificates for client certificates; unset asks for none.
        client_ca_file: Option<PathBuf> = None,
        /// With `client_ca_file`: `optional` verifies a certificate when one is sent,
        /// `required` refuses clients without one.
        client_auth: ClientAuth = ClientAuth::Optional,
        /// Keep cleartext HTTP/1.1 and h2c on the same port: a connection whose first byte
        /// is not a TLS handshake is served in the clear.
        cleartext: bool = true,
    }
}

/// Whether a client certificate is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClientAuth {
    /// Verified when sent.
    Optional,
    /// Clients without a valid certificate are refused.
    Required,
}

/// Why the configuration is unusable; the message names the key, the value and what was
/// expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(String);

/// Where a key's value came from, for messages.
fn origin(sources: &BTreeMap<String, String>, path: &str, file: &str) -> String {
    sources
        .get(path)
        .cloned()
        .unwrap_or_else(|| file.to_owned())
}

impl Config {
    /// Every key and table, as declared.
    fn schema() -> Schema {
        let mut schema = Schema::default();
        Self::describe("", false, &mut schema);
        schema
    }

    /// The documented keys, in declaration order.
    fn keys() -> Vec<KeyDoc> {
        Self::schema().keys
    }

    /// Reads the file at `path` (or [`DEFAULT_PATH`] if it exists), overlays the
    /// `SWITCHYARD_…` variables of `env`, and checks every key and value.
    ///
    /// # Errors
    ///
    /// A missing explicit file, a TOML syntax error, an unknown key, or a value of the wrong
    /// type or out of range: the message names the key, the value and what was expected. A
    /// JSON file (the gateway's old configuration) is refused with its TOML translation.
    pub(crate) fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (file, text) = match path {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?,
            ),
            None => match std::fs::read_to_string(DEFAULT_PATH) {
                Ok(text) => (DEFAULT_PATH.to_owned(), text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    ("(defaults)".to_owned(), String::new())
                }
                Err(e) => {
                    return Err(ConfigError(format!(
                        "cannot read config file {DEFAULT_PATH}: {e}"
                    )));
                }
            },
        };
        let json = path
            .and_then(Path::extension)
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if json || (text.trim_start().starts_with('{') && text.parse::<toml::Table>().is_err()) {
            return Err(legacy_json::refusal(&file, &text));
        }
        Self::parse(&file, &text, env)
    }

    /// [`Config::load`] on text already read; `file` names it in messages.
    fn parse(
        file: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError(format!("{file}: {e}")))?;
        let schema = Self::schema();
        check_table(&table, "", "", &schema, file)?;
        // key path -> the environment variable that set it
        let mut sources = BTreeMap::new();
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        for key in &schema.keys {
            let Some(name) = key.env() else { continue };
            let Some(raw) = env.get(&name) else { continue };
            let value = env_value(key.kind, raw).map_err(|expected| {
                ConfigError(format!(
                    "{name}={raw:?}: invalid value for `{}`: expected {expected}",
                    key.path()
                ))
            })?;
            let mut target = &mut table;
            for part in key.section.split('.').filter(|p| !p.is_empty()) {
                target = target
                    .entry(part)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| {
                        ConfigError(format!("{file}: `{}` must be a table", key.section))
                    })?;
            }
            target.insert(key.name.to_owned(), value);
            sources.insert(key.path(), name);
        }
        let root = toml::Value::Table(table);
        let config: Self = serde_path_to_error::deserialize(root.clone()).map_err(|err| {
            // The key as the file spells it, and the value found there.
            let mut path = String::new();
            let mut node = Some(&root);
            for segment in err.path().iter() {
                match segment {
                    serde_path_to_error::Segment::Map { key } => {
                        path = join_quoted(&path, key);
                        node = node.and_then(|v| v.get(key.as_str()));
                    }
                    serde_path_to_error::Segment::Seq { index } => {
                        path.push_str(&format!("[{index}]"));
                        node = node.and_then(|v| v.get(*index));
                    }
                    _ => {}
                }
            }
            let shown = node.map(|v| format!(" = {v}")).unwrap_or_default();
            let expected = schema
                .keys
                .iter()
                .find(|k| k.path() == path && k.kind != Kind::Str)
                .map(|k| format!(" (expected {})", k.kind.expected()))
                .unwrap_or_default();
            // toml repeats the key on a line of its own: we name it already.
            let inner = err.inner().to_string();
            let inner = inner.lines().next().unwrap_or_default().trim();
            ConfigError(format!(
                "{}: invalid value for `{path}`{shown}: {inner}{expected}",
                origin(&sources, &path, file),
            ))
        })?;
        config.validate().map_err(|(path, message)| {
            ConfigError(format!(
                "{}: invalid value for `{path}`: {message}",
                origin(&sources, &path, file)
            ))
        })?;
        Ok(config)
    }

    /// Checks the rules serde cannot: (key, what is wrong).
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        for (service, prefix) in &self.rest_prefixes {
            if service.is_empty() || !prefix.starts_with('/') {
                return err(
                    "rest_prefixes",
                    &format!("expected SERVICE = \"/prefix\", got {service:?} = {prefix:?}"),
                );
            }
        }
        if self.limits.max_body_bytes == 0 {
            return err("limits.max_body_bytes", "expected a positive size");
        }
        if self.limits.max_connections == 0 {
            return err("limits.max_connections", "expected at least 1");
        }
        if self.limits.max_concurrent_streams == 0 {
            return err("limits.max_concurrent_streams", "expected at least 1");
        }
        if self.limits.header_read_timeout.0.is_zero() {
            return err("limits.header_read_timeout", "expected a positive duration");
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return err(
                "tls.cert_file",
                "expected tls.cert_file and tls.key_file together",
            );
        }
        if self.tls.client_ca_file.is_some() && self.tls.cert_file.is_none() {
            return err(
                "tls.client_ca_file",
                "expected tls.cert_file and tls.key_file too",
            );
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return err(
                    "cors.allowed_origins",
                    &format!(
                        "expected \"*\" or origins like \"https://app.example\", got {origin:?}"
                    ),
                );
            }
        }
        self.gateway.validate()
    }

    /// The effective configuration as TOML, secrets masked.
    pub(crate) fn print(&self) -> String {
        let mut shown = self.clone();
        if let Some(url) = &shown.database_url {
            shown.database_url = Some(crate::store::redact(url));
        }
        debug_assert!(
            Self::keys()
                .iter()
                .filter(|k| k.secret)
                .all(|k| k.path() == "database_url"),
            "a new secret key must be masked here"
        );
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The Markdown reference of every key (the README's "Configuration reference").
    pub(crate) fn reference() -> String {
        let mut out = String::from(
            "| key | environment | default | description |\n| --- | --- | --- | --- |\n",
        );
        for key in Self::keys() {
            let default = key
                .default
                .as_deref()
                .map(|d| format!("`{}`", d.replace('|', "\\|")))
                .unwrap_or_else(|| "unset".to_owned());
            let env = key
                .env()
                .map_or_else(|| "(file only)".to_owned(), |env| format!("`{env}`"));
            out.push_str(&format!(
                "| `{}` | {env} | {default} | {} |\n",
                key.path(),
                key.text().replace('|', "\\|")
            ));
        }
        out
    }

    /// The commented example file (the shipped `config/switchyard.toml`): every key, commented
    /// out, with its doc and default.
    pub(crate) fn example() -> String {
        let mut out = String::from(
            "# Switchyard configuration (`switchyard serve --config FILE` and `switchyard gateway\n\
             # --config FILE`; default config/switchyard.toml). Every key is optional and shown\n\
             # commented out with its default. Each key is also read from an environment\n\
             # variable, SWITCHYARD_ and the key's path in capitals with `_` for `.`\n\
             # (SWITCHYARD_LIMITS_MAX_BODY_BYTES); command-line flags override both. Generated by\n\
             # `switchyard config example`.\n",
        );
        let schema = Self::schema();
        let mut current = String::new();
        for key in &schema.keys {
            if key.section != current {
                current.clone_from(&key.section);
                out.push('\n');
                let section = schema.sections.iter().find(|s| s.path == current);
                for line in section.map_or(&[][..], |s| s.doc) {
                    out.push_str(&format!("#{line}\n"));
                }
                if key.per_entry {
                    // A placeholder name: the header stays commented out, with the name quoted.
                    let header: Vec<String> = current
                        .split('.')
                        .map(|part| {
                            if part.starts_with('<') {
                                format!("{part:?}")
                            } else {
                                part.to_owned()
                            }
                        })
                        .collect();
                    out.push_str(&format!("# [{}]\n", header.join(".")));
                } else {
                    out.push_str(&format!("[{current}]\n"));
                }
            }
            out.push('\n');
            for line in key.doc {
                out.push_str(&format!("#{line}\n"));
            }
            match (&key.default, key.kind) {
                (Some(default), Kind::Map) => {
                    // A table value reads best as a sub-table.
                    out.push_str(&format!("# [{}]\n", key.path()));
                    let table = format!("v = {default}").parse::<toml::Table>().ok();
                    if let Some(toml::Value::Table(table)) = table.and_then(|mut t| t.remove("v")) {
                        for (k, v) in table {
                            out.push_str(&format!("# {:?} = {v}\n", k));
                        }
                    } else {
                        out.push_str(&format!("# {} = {default}\n", key.name));
                    }
                }
                (Some(default), _) => out.push_str(&format!("# {} = {default}\n", key.name)),
                (None, kind) => out.push_str(&format!(
                    "# {} =   (unset by default; {})\n",
                    key.name,
                    kind.expected()
                )),
            }
        }
        out
    }
}

/// Rejects keys the types do not declare, naming the closest ones: `table` sits at `shown` (as
/// the file spells it) and is declared at `pattern` (placeholders for entry names).
fn check_table(
    table: &toml::Table,
    shown: &str,
    pattern: &str,
    schema: &Schema,
    file: &str,
) -> Result<(), ConfigError> {
    let must_be_table =
        |path: &str| ConfigError(format!("{file}: `{path}` must be a table ([{path}])"));
    for (name, value) in table {
        if schema
            .keys
            .iter()
            .any(|k| k.section == pattern && k.name == name)
        {
            continue;
        }
        let child = join(pattern, name);
        let shown_child = join_quoted(shown, name);
        if let Some(section) = schema
            .sections
            .iter()
            .find(|s| s.entries_in.is_none() && s.path == child)
        {
            let inner = value
                .as_table()
                .ok_or_else(|| must_be_table(&shown_child))?;
            check_table(inner, &shown_child, &section.path, schema, file)?;
        } else if let Some(section) = schema
            .sections
            .iter()
            .find(|s| s.entries_in.as_deref() == Some(child.as_str()))
        {
            let entries = value
                .as_table()
                .ok_or_else(|| must_be_table(&shown_child))?;
            for (entry, inner) in entries {
                let shown_entry = join_quoted(&shown_child, entry);
                let inner = inner
                    .as_table()
                    .ok_or_else(|| must_be_table(&shown_entry))?;
                check_table(inner, &shown_entry, &section.path, schema, file)?;
            }
        } else if shown.is_empty() {
            return Err(ConfigError(format!(
                "{file}: unknown key `{name}`; expected one of: {}",
                schema.names_in(pattern).join(", ")
            )));
        } else {
            return Err(ConfigError(format!(
                "{file}: unknown key `{shown_child}`; [{shown}] has: {}",
                schema.names_in(pattern).join(", ")
            )));
        }
    }
    Ok(())
}

/// Parses an environment variable's text as a value of `kind`; `Err` says what was expected.
fn env_value(kind: Kind, raw: &str) -> Result<toml::Value, &'static str> {
    let items = || raw.split(',').map(str::trim).filter(|s| !s.is_empty());
    Ok(match kind {
        Kind::Bool => match raw.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => return Err(kind.expected()),
        },
        Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| kind.expected())?),
        Kind::List => toml::Value::Array(items().map(|s| toml::Value::String(s.into())).collect()),
        Kind::Map => {
            let mut table = toml::Table::new();
            for item in items() {
                let (k, v) = item
                    .split_once('=')
                    .ok_or("comma-separated KEY=VALUE pairs")?;
                table.insert(
                    k.trim().to_owned(),
                    toml::Value::String(v.trim().to_owned()),
                );
            }
            toml::Value::Table(table)
        }
        Kind::Str => toml::Value::String(raw.to_owned()),
    })
}

#[cfg(test)]
mod tests;
