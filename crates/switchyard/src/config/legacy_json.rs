//! The gateway's old JSON configuration file, refused: the error carries the same settings
//! as TOML, so that moving is a copy and paste.
//!
//! Only the translation lives here; the TOML keys themselves are declared in `super` and
//! [`super::gateway`].

use std::time::Duration;

use serde_json::Value as Json;

use super::{ConfigError, Dur};

/// What a JSON file could not be read as the old format, shown instead of a translation.
const EXAMPLE: &str = r#"listen = "127.0.0.1:8081"

[gateway]
descriptor_set = "api.pb"
endpoints = ["http://127.0.0.1:50051"]

[gateway.services."billing.v1.BillingService"]
strict_query = true
"#;

/// The error for the JSON file `file` holding `text`.
pub(super) fn refusal(file: &str, text: &str) -> ConfigError {
    let head = format!(
        "{file} is JSON: `switchyard gateway` no longer reads a JSON configuration, it reads the \
         same TOML file as `switchyard serve` (every key: `switchyard config example`)"
    );
    match translate(text) {
        Ok(toml) => ConfigError(format!("{head}. The same settings in TOML:\n\n{toml}")),
        Err(why) => ConfigError(format!(
            "{head}; it is not the old gateway configuration either ({why}). The TOML form, for \
             example:\n\n{EXAMPLE}"
        )),
    }
}

/// The old gateway JSON as TOML text, or why it is not that.
pub(super) fn translate(text: &str) -> Result<String, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = json.as_object().ok_or("not a JSON object")?;
    let mut root = toml::Table::new();
    let mut limits = toml::Table::new();
    let mut gateway = toml::Table::new();
    let mut prefixes = toml::Table::new();
    for (key, value) in object {
        match key.as_str() {
            "listen" => {
                root.insert(key.clone(), to_toml(key, value)?);
            }
            "max_message_bytes" => {
                limits.insert("max_body_bytes".into(), to_toml(key, value)?);
            }
            "timeout_ms" => {
                limits.insert("request_timeout".into(), millis(key, value)?);
            }
            "descriptor_set" | "protos" | "proto_paths" | "reflect" | "default_upstream"
            | "forward_headers" | "json" | "upstreams" => {
                gateway.insert(key.clone(), to_toml(key, value)?);
            }
            "services" => {
                let services = value.as_object().ok_or("`services` is not an object")?;
                let mut out = toml::Table::new();
                for (service, options) in services {
                    let options = options
                        .as_object()
                        .ok_or_else(|| format!("`services.{service}` is not an object"))?;
                    let mut table = toml::Table::new();
                    for (key, value) in options {
                        let path = format!("services.{service}.{key}");
                        match key.as_str() {
                            // The REST prefix is a key both modes share.
                            "prefix" => {
                                prefixes.insert(service.clone(), to_toml(&path, value)?);
                            }
                            "timeout_ms" => {
                                table.insert("timeout".into(), millis(&path, value)?);
                            }
                            "upstream" | "json" | "strict_query" | "openapi_headers" => {
                                table.insert(key.clone(), to_toml(&path, value)?);
                            }
                            _ => return Err(format!("unknown key `{path}`")),
                        }
                    }
                    out.insert(service.clone(), toml::Value::Table(table));
                }
                gateway.insert(key.clone(), toml::Value::Table(out));
            }
            _ => return Err(format!("unknown key `{key}`")),
        }
    }
    for (name, table) in [
        ("rest_prefixes", prefixes),
        ("limits", limits),
        ("gateway", gateway),
    ] {
        if !table.is_empty() {
            root.insert(name.into(), toml::Value::Table(table));
        }
    }
    toml::to_string(&root).map_err(|e| e.to_string())
}

/// A JSON value as TOML (`null` has no TOML form).
fn to_toml(key: &str, value: &Json) -> Result<toml::Value, String> {
    toml::Value::try_from(value).map_err(|e| format!("`{key}`: {e}"))
}

/// Milliseconds as a TOML duration (`"30s"`).
fn millis(key: &str, value: &Json) -> Result<toml::Value, String> {
    let ms = value
        .as_u64()
        .ok_or_else(|| format!("`{key}` is not a number of milliseconds"))?;
    Ok(toml::Value::String(
        Dur(Duration::from_millis(ms)).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    /// What `config/gateway.example.json` held before the JSON file went.
    const OLD_EXAMPLE: &str = r#"{
      "listen": "127.0.0.1:8081",
      "descriptor_set": "api.pb",
      "upstreams": {
        "users": { "endpoints": ["http://127.0.0.1:50051", "http://127.0.0.1:50052"] },
        "billing": { "endpoints": ["http://127.0.0.1:50061"] }
      },
      "default_upstream": "users",
      "forward_headers": ["x-zitadel-*", "x-request-id"],
      "timeout_ms": 30000,
      "max_message_bytes": 1024,
      "json": { "emit_unpopulated": false },
      "services": {
        "billing.v1.BillingService": {
          "upstream": "billing",
          "prefix": "/billing",
          "timeout_ms": 5000,
          "strict_query": true,
          "openapi_headers": ["x-tenant"],
          "json": { "use_proto_field_names": true, "use_enum_numbers": true, "ignore_unknown_fields": false }
        }
      }
    }"#;

    #[test]
    fn the_old_example_translates_to_an_equivalent_toml_file() {
        let toml = translate(OLD_EXAMPLE).expect("translates");
        let config = Config::parse("translated", &toml, Vec::new())
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(config.listen.port(), 8081);
        assert_eq!(config.limits.max_body_bytes, 1024);
        assert_eq!(
            config.limits.request_timeout.map(|d| d.0),
            Some(Duration::from_secs(30))
        );
        let gateway = &config.gateway;
        assert_eq!(gateway.default_upstream.as_deref(), Some("users"));
        assert_eq!(gateway.upstreams["users"].endpoints.len(), 2);
        let billing = &gateway.services["billing.v1.BillingService"];
        assert_eq!(billing.upstream.as_deref(), Some("billing"));
        assert_eq!(billing.timeout.map(|d| d.0), Some(Duration::from_secs(5)));
        assert!(billing.strict_query);
        assert_eq!(billing.openapi_headers, ["x-tenant"]);
        assert_eq!(billing.json.use_enum_numbers, Some(true));
        assert_eq!(billing.json.ignore_unknown_fields, Some(false));
        assert_eq!(
            config.rest_prefixes.get("billing.v1.BillingService"),
            Some(&"/billing".to_owned())
        );
        assert_eq!(config.rest_prefixes.len(), 1);
    }

    #[test]
    fn what_is_not_the_old_format_gets_an_example() {
        for text in ["[1]", "{\"nope\": 1}", "{\"listen\": null}", "{"] {
            let err = refusal("old.json", text).to_string();
            assert!(err.contains("old.json is JSON"), "{err}");
            assert!(err.contains("[gateway]"), "{err}");
            Config::parse("example", EXAMPLE, Vec::new()).expect("the example is valid");
        }
    }
}
