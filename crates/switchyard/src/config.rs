//! `serve`'s configuration: one TOML file, every key overridable by a `SWITCHYARD_…`
//! environment variable, command-line flags over both.
//!
//! The types here are the single source of truth: the [`config_section!`] macro that declares
//! them also records each key's name, type, default and doc comment, from which come the
//! environment-variable names, the unknown-key check, `switchyard config reference` (the
//! README's table) and `switchyard config example` (the shipped `config/switchyard.toml`).
//! Turning the values into gateway and server options is `crate::serve`'s job.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LogFormat;

/// Where `serve` looks for its configuration when `--config` is not given. A missing default
/// file means "all defaults"; a missing explicit file is an error.
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
    /// The TOML table it lives in; empty for top-level keys.
    section: &'static str,
    /// The key's name inside its table.
    name: &'static str,
    kind: Kind,
    /// The default, as TOML, or `None` when unset by default.
    default: Option<String>,
    /// The doc comment, one entry per line.
    doc: &'static [&'static str],
    /// Whether the value is masked by `config print`.
    secret: bool,
}

impl KeyDoc {
    /// `section.name`, or `name` for a top-level key.
    fn path(&self) -> String {
        if self.section.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}.{}", self.section, self.name)
        }
    }

    /// The environment variable that overrides this key.
    fn env(&self) -> String {
        format!("{ENV_PREFIX}{}", self.path().replace('.', "_")).to_ascii_uppercase()
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

/// The default of a key as TOML text, or `None` when it has none (an unset `Option`).
fn render_default<T: Serialize>(value: &T) -> Option<String> {
    toml::Value::try_from(value).ok().map(|v| v.to_string())
}

/// Declares one table of the configuration: the struct (serde, `deny_unknown_fields`, every
/// key optional), its `Default`, and `keys()`, the documentation of its keys. `#[secret = true]`
/// marks a key whose value `config print` masks.
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident [$section:literal] {
            $(
                $(#[doc = $doc:literal])*
                $(#[secret = $secret:literal])?
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
        $(sections { $( $sec:ident : $secty:ident ),* $(,)? })?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub(crate) struct $name {
            $( $(#[doc = $doc])* pub(crate) $field: $ty, )*
            $($(
                #[doc = concat!("The `[", stringify!($sec), "]` table.")]
                pub(crate) $sec: $secty,
            )*)?
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $($( $sec: $secty::default(), )*)?
                }
            }
        }

        impl $name {
            /// This table's doc comment.
            #[allow(dead_code)]
            const DOC: &'static [&'static str] = &[$($sdoc),*];

            /// The documented keys of this table and of its sub-tables.
            fn keys() -> Vec<KeyDoc> {
                let defaults = Self::default();
                #[allow(unused_mut)]
                let mut keys = vec![$(
                    KeyDoc {
                        section: $section,
                        name: stringify!($field),
                        kind: Kind::of(stringify!($ty)),
                        default: render_default(&defaults.$field),
                        doc: &[$($doc),*],
                        secret: false $(|| $secret)?,
                    },
                )*];
                $($( keys.extend($secty::keys()); )*)?
                keys
            }

            /// The tables below this one: (name, doc).
            #[allow(dead_code)]
            fn sections() -> Vec<(&'static str, &'static [&'static str])> {
                vec![$($( (stringify!($sec), $secty::DOC), )*)?]
            }
        }
    };
}

config_section! {
    /// Switchyard's configuration (`switchyard serve`).
    Config [""] {
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
    sections { log: Log, limits: Limits, shutdown: Shutdown, cors: Cors, tls: Tls, jwt: Jwt }
}

config_section! {
    /// Logging on stderr.
    Log ["log"] {
        /// `text` (human-readable) or `json` (one object per line).
        format: LogFormat = LogFormat::Text,
        /// Which events to log, as `RUST_LOG` would say it (`RUST_LOG` wins when set); access
        /// lines (one per call) are at target `switchyard::access`.
        filter: String = "info".to_owned(),
    }
}

config_section! {
    /// Limits that protect the server from large or slow clients.
    Limits ["limits"] {
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
    Shutdown ["shutdown"] {
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
    Cors ["cors"] {
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
    Jwt ["jwt"] {
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
    Tls ["tls"] {
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

/// A duration written as `500ms`, `10s`, `5m` or `1h` (an integer is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

impl Dur {
    const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let expected = || format!("expected a duration like 500ms, 10s, 5m or 1h, got {text:?}");
        let number: u64 = number.parse().map_err(|_| expected())?;
        let millis = match unit.trim() {
            "ms" => Some(number),
            "" | "s" => number.checked_mul(1000),
            "m" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            _ => return Err(expected()),
        };
        millis
            .map(|ms| Self(Duration::from_millis(ms)))
            .ok_or_else(expected)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 500ms, 10s, 5m or 1h")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(Dur::secs)
                    .map_err(|_| E::custom(format!("expected a non-negative duration, got {v}")))
            }
        }
        d.deserialize_any(Visitor)
    }
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
    /// Reads the file at `path` (or [`DEFAULT_PATH`] if it exists), overlays the
    /// `SWITCHYARD_…` variables of `env`, and checks every key and value.
    ///
    /// # Errors
    ///
    /// A missing explicit file, a TOML syntax error, an unknown key, or a value of the wrong
    /// type or out of range: the message names the key, the value and what was expected.
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
        let keys = Self::keys();
        check_unknown(&table, &keys, file)?;
        // key path -> the environment variable that set it
        let mut sources = BTreeMap::new();
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        for key in &keys {
            let name = key.env();
            let Some(raw) = env.get(&name) else { continue };
            let value = env_value(key.kind, raw).map_err(|expected| {
                ConfigError(format!(
                    "{name}={raw:?}: invalid value for `{}`: expected {expected}",
                    key.path()
                ))
            })?;
            let target = if key.section.is_empty() {
                &mut table
            } else {
                table
                    .entry(key.section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| {
                        ConfigError(format!("{file}: `{}` must be a table", key.section))
                    })?
            };
            target.insert(key.name.to_owned(), value);
            sources.insert(key.path(), name);
        }
        let value = toml::Value::Table(table.clone());
        let config: Self = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let shown = lookup(&table, &path)
                .map(|v| format!(" = {v}"))
                .unwrap_or_default();
            let expected = keys
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
                origin(&sources, path, file)
            ))
        })?;
        Ok(config)
    }

    /// Checks the rules serde cannot: (key, what is wrong).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        for (service, prefix) in &self.rest_prefixes {
            if service.is_empty() || !prefix.starts_with('/') {
                return Err((
                    "rest_prefixes",
                    format!("expected SERVICE = \"/prefix\", got {service:?} = {prefix:?}"),
                ));
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(("limits.max_body_bytes", "expected a positive size".into()));
        }
        if self.limits.max_connections == 0 {
            return Err(("limits.max_connections", "expected at least 1".into()));
        }
        if self.limits.max_concurrent_streams == 0 {
            return Err((
                "limits.max_concurrent_streams",
                "expected at least 1".into(),
            ));
        }
        if self.limits.header_read_timeout.0.is_zero() {
            return Err((
                "limits.header_read_timeout",
                "expected a positive duration".into(),
            ));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err((
                "tls.cert_file",
                "expected tls.cert_file and tls.key_file together".into(),
            ));
        }
        if self.tls.client_ca_file.is_some() && self.tls.cert_file.is_none() {
            return Err((
                "tls.client_ca_file",
                "expected tls.cert_file and tls.key_file too".into(),
            ));
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err((
                    "cors.allowed_origins",
                    format!(
                        "expected \"*\" or origins like \"https://app.example\", got {origin:?}"
                    ),
                ));
            }
        }
        Ok(())
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
            out.push_str(&format!(
                "| `{}` | `{}` | {default} | {} |\n",
                key.path(),
                key.env(),
                key.text().replace('|', "\\|")
            ));
        }
        out
    }

    /// The commented example file (the shipped `config/switchyard.toml`): every key, commented
    /// out, with its doc and default.
    pub(crate) fn example() -> String {
        let mut out = String::from(
            "# Switchyard configuration (`switchyard serve --config FILE`; default\n\
             # config/switchyard.toml). Every key is optional and shown commented out with its\n\
             # default. Each key is also read from an environment variable, SWITCHYARD_ and the\n\
             # key's path in capitals with `_` for `.` (SWITCHYARD_LIMITS_MAX_BODY_BYTES);\n\
             # command-line flags override both. Generated by `switchyard config example`.\n",
        );
        let sections = Self::sections();
        let mut current = "";
        for key in Self::keys() {
            if key.section != current {
                current = key.section;
                out.push('\n');
                if let Some((_, doc)) = sections.iter().find(|(name, _)| *name == current) {
                    for line in *doc {
                        out.push_str(&format!("#{line}\n"));
                    }
                }
                out.push_str(&format!("[{current}]\n"));
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

/// Rejects keys the types do not declare, naming the closest ones.
fn check_unknown(table: &toml::Table, keys: &[KeyDoc], file: &str) -> Result<(), ConfigError> {
    let sections: Vec<&str> = Config::sections().iter().map(|(name, _)| *name).collect();
    let known_in = |section: &str| -> Vec<&'static str> {
        keys.iter()
            .filter(|k| k.section == section)
            .map(|k| k.name)
            .collect()
    };
    for (name, value) in table {
        if sections.contains(&name.as_str()) {
            let Some(inner) = value.as_table() else {
                return Err(ConfigError(format!(
                    "{file}: `{name}` must be a table ([{name}])"
                )));
            };
            let known = known_in(name);
            for inner_name in inner.keys() {
                if !known.contains(&inner_name.as_str()) {
                    return Err(ConfigError(format!(
                        "{file}: unknown key `{name}.{inner_name}`; [{name}] has: {}",
                        known.join(", ")
                    )));
                }
            }
        } else if !known_in("").contains(&name.as_str()) {
            let mut all = known_in("");
            all.extend(sections.iter().copied());
            return Err(ConfigError(format!(
                "{file}: unknown key `{name}`; expected one of: {}",
                all.join(", ")
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

/// The value at a dotted `path` of `table`, as TOML.
fn lookup(table: &toml::Table, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn errors_name_the_key_the_value_and_what_was_expected() {
        struct Case {
            file: &'static str,
            env: &'static [(&'static str, &'static str)],
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                file: "lisen = \"127.0.0.1:1\"\n",
                env: &[],
                want: &["unknown key `lisen`", "listen"],
            },
            Case {
                file: "[limits]\nmax_body = 3\n",
                env: &[],
                want: &["unknown key `limits.max_body`", "max_body_bytes"],
            },
            Case {
                file: "[limits]\nmax_body_bytes = \"lots\"\n",
                env: &[],
                want: &["limits.max_body_bytes", "\"lots\"", "integer"],
            },
            Case {
                file: "listen = \"nowhere\"\n",
                env: &[],
                want: &["`listen`", "\"nowhere\""],
            },
            Case {
                file: "[shutdown]\ngrace_period = \"soon\"\n",
                env: &[],
                want: &["shutdown.grace_period", "\"soon\"", "500ms"],
            },
            Case {
                file: "",
                env: &[("SWITCHYARD_LIMITS_MAX_CONNECTIONS", "many")],
                want: &[
                    "SWITCHYARD_LIMITS_MAX_CONNECTIONS=\"many\"",
                    "limits.max_connections",
                    "integer",
                ],
            },
            Case {
                file: "",
                env: &[("SWITCHYARD_LOG_FORMAT", "xml")],
                want: &["SWITCHYARD_LOG_FORMAT", "log.format", "xml"],
            },
            Case {
                file: "[tls]\ncert_file = \"a.pem\"\n",
                env: &[],
                want: &["tls.cert_file", "key_file"],
            },
            Case {
                file: "[cors]\nallowed_origins = [\"app.example\"]\n",
                env: &[],
                want: &["cors.allowed_origins", "app.example"],
            },
            Case {
                file: "listen = [\n",
                env: &[],
                want: &["test.toml"],
            },
        ];
        for case in cases {
            let err = Config::parse("test.toml", case.file, env(case.env))
                .expect_err(case.file)
                .to_string();
            for want in case.want {
                assert!(
                    err.contains(want),
                    "{:?}: {err:?} lacks {want:?}",
                    case.file
                );
            }
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "listen = \"127.0.0.1:1\"\n[limits]\nmax_body_bytes = 10\n";
        let config = Config::parse(
            "t",
            file,
            env(&[
                ("SWITCHYARD_LISTEN", "127.0.0.1:2"),
                ("SWITCHYARD_GROUP_COMMIT", "false"),
                (
                    "SWITCHYARD_CORS_ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("SWITCHYARD_REST_PREFIXES", "a.B=/x"),
                ("SWITCHYARD_SHUTDOWN_GRACE_PERIOD", "500ms"),
                ("SWITCHYARD_UNRELATED", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.limits.max_body_bytes, 10);
        assert!(!config.group_commit);
        assert_eq!(config.cors.allowed_origins.len(), 2);
        assert_eq!(
            config.rest_prefixes.get("a.B").map(String::as_str),
            Some("/x")
        );
        assert_eq!(config.shutdown.grace_period.0, Duration::from_millis(500));
    }

    #[test]
    fn durations_parse_and_print() {
        let cases = [
            ("500ms", Some(500_u64)),
            ("10s", Some(10_000)),
            ("10", Some(10_000)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("", None),
            ("1d", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<Dur>().ok().map(|d| d.0.as_millis());
            assert_eq!(got, want.map(u128::from), "{text}");
            if let Ok(d) = text.parse::<Dur>() {
                assert_eq!(d.to_string().parse::<Dur>(), Ok(d));
            }
        }
    }

    #[test]
    fn print_masks_the_database_password() {
        let config = Config::parse(
            "t",
            "database_url = \"postgres://u:hunter2@db:5432/x\"\n",
            env(&[]),
        )
        .expect("valid");
        let printed = config.print();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db:5432"), "{printed}");
        // What is printed loads again.
        Config::parse("printed", &printed.replace("…", ""), env(&[])).expect("round trip");
    }

    #[test]
    fn shipped_file_is_the_generated_example_and_loads_to_the_defaults() {
        let shipped = include_str!("../../../config/switchyard.toml");
        assert_eq!(
            shipped,
            Config::example(),
            "config/switchyard.toml is stale: run `switchyard config example > config/switchyard.toml`"
        );
        let config = Config::parse("shipped", shipped, env(&[])).expect("valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn readme_holds_the_generated_reference() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&Config::reference()),
            "README.md's configuration reference is stale: paste `switchyard config reference`"
        );
    }

    #[test]
    fn every_env_name_is_distinct() {
        let mut names: Vec<String> = Config::keys().iter().map(KeyDoc::env).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
