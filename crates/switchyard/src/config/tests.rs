//! The configuration's unit tests: messages, the environment, the generated files.

use std::time::Duration;

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
        Case {
            file: "[gateway]\nupstream = \"http://a:1\"\n",
            env: &[],
            want: &["unknown key `gateway.upstream`", "endpoints", "services"],
        },
        Case {
            file: "[gateway.services.\"a.v1.S\"]\nprefix = \"/a\"\n",
            env: &[],
            want: &[
                "unknown key `gateway.services.\"a.v1.S\".prefix`",
                "strict_query",
            ],
        },
        Case {
            file: "[gateway.services.\"a.v1.S\"]\nstrict_query = \"yes\"\n",
            env: &[],
            want: &[
                "`gateway.services.\"a.v1.S\".strict_query` = \"yes\"",
                "bool",
            ],
        },
        Case {
            file: "[gateway.services.\"a.v1.S\"]\nupstream = \"nope\"\n",
            env: &[],
            want: &["gateway.services.\"a.v1.S\".upstream", "\"nope\""],
        },
        Case {
            file: "[gateway]\ndefault_upstream = \"users\"\n[gateway.upstreams.other]\nendpoints = [\"http://127.0.0.1:1\"]\n",
            env: &[],
            want: &["gateway.default_upstream", "\"users\"", "other"],
        },
        Case {
            file: "[gateway.upstreams.users]\nendpoints = [\"127.0.0.1:1\"]\n",
            env: &[],
            want: &["gateway.upstreams.users.endpoints", "127.0.0.1:1"],
        },
        Case {
            file: "[gateway]\ndescriptor_set = \"a.pb\"\nreflect = true\n",
            env: &[],
            want: &["gateway.descriptor_set", "one descriptor source"],
        },
        Case {
            file: "",
            env: &[("SWITCHYARD_GATEWAY_ENDPOINTS", "ftp://x")],
            want: &[
                "SWITCHYARD_GATEWAY_ENDPOINTS",
                "gateway.endpoints",
                "ftp://x",
            ],
        },
        Case {
            file: "[gateway.json]\nemit_unpopulated = 1\n",
            env: &[],
            want: &["gateway.json.emit_unpopulated", "true or false"],
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
fn environment_overrides_gateway_keys() {
    let file = "[gateway]\nendpoints = [\"http://127.0.0.1:1\"]\n[gateway.json]\nuse_enum_numbers = false\n";
    let config = Config::parse(
        "t",
        file,
        env(&[
            (
                "SWITCHYARD_GATEWAY_ENDPOINTS",
                "http://127.0.0.1:2,http://127.0.0.1:3",
            ),
            ("SWITCHYARD_GATEWAY_JSON_USE_ENUM_NUMBERS", "true"),
            ("SWITCHYARD_GATEWAY_FORWARD_HEADERS", "x-a-*"),
            ("SWITCHYARD_GATEWAY_PROTOS", "a.proto"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config.gateway.endpoints,
        ["http://127.0.0.1:2", "http://127.0.0.1:3"]
    );
    assert!(config.gateway.json.use_enum_numbers);
    assert_eq!(
        config.gateway.forward_headers,
        Some(vec!["x-a-*".to_owned()])
    );
    assert_eq!(config.gateway.protos, [PathBuf::from("a.proto")]);
}

#[test]
fn a_json_file_is_refused_with_its_toml_translation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.json");
    std::fs::write(
        &path,
        r#"{"listen": "127.0.0.1:9", "upstreams": {"echo": {"endpoints": ["http://127.0.0.1:1"]}},
            "services": {"a.v1.S": {"prefix": "/a", "strict_query": true}}}"#,
    )
    .expect("write");
    let err = Config::load(Some(&path), env(&[]))
        .expect_err("JSON refused")
        .to_string();
    for want in [
        "gateway.json is JSON",
        "TOML",
        "[gateway.upstreams.echo]",
        "[gateway.services.\"a.v1.S\"]",
        "strict_query = true",
        "[rest_prefixes]",
    ] {
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
}

#[test]
fn gateway_tables_print_and_load_again() {
    let file = "[gateway]\ndefault_upstream = \"u\"\n[gateway.upstreams.u]\nendpoints = [\"http://127.0.0.1:1\"]\n[gateway.services.\"a.v1.S\"]\ntimeout = \"5s\"\n[gateway.services.\"a.v1.S\".json]\nuse_enum_numbers = true\n";
    let config = Config::parse("t", file, env(&[])).expect("valid");
    let printed = config.print();
    let again =
        Config::parse("printed", &printed, env(&[])).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again, config);
}

#[test]
fn shipped_gateway_example_is_valid() {
    let shipped = include_str!("../../../../config/gateway.example.toml");
    let config = Config::parse("gateway.example.toml", shipped, env(&[])).expect("valid");
    assert_eq!(config.gateway.upstreams.len(), 2);
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
    let shipped = include_str!("../../../../config/switchyard.toml");
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
    let readme = include_str!("../../../../README.md");
    assert!(
        readme.contains(&Config::reference()),
        "README.md's configuration reference is stale: paste `switchyard config reference`"
    );
}

#[test]
fn every_env_name_is_distinct() {
    let mut names: Vec<String> = Config::keys().iter().filter_map(KeyDoc::env).collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count);
}
