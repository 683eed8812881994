use super::*;

struct ParseCase {
    input: &'static str,
    want_segments: &'static [&'static str],
    want_vars: &'static [(&'static str, usize, usize)],
    want_verb: Option<&'static str>,
    want_err: Option<&'static str>,
}

fn seg_text(s: &Segment) -> String {
    match s {
        Segment::Literal(l) => l.clone(),
        Segment::Wildcard => "*".into(),
        Segment::DeepWildcard => "**".into(),
    }
}

#[test]
fn parse_table() {
    let ok = |input, segs, vars, verb| ParseCase {
        input,
        want_segments: segs,
        want_vars: vars,
        want_verb: verb,
        want_err: None,
    };
    let err = |input, msg| ParseCase {
        input,
        want_segments: &[],
        want_vars: &[],
        want_verb: None,
        want_err: Some(msg),
    };
    let cases = [
        ok("/v1/books", &["v1", "books"], &[], None),
        ok(
            "/v1/books/{id}",
            &["v1", "books", "*"],
            &[("id", 2, 3)],
            None,
        ),
        ok(
            "/v1/{name=shelves/*/books/*}",
            &["v1", "shelves", "*", "books", "*"],
            &[("name", 1, 5)],
            None,
        ),
        ok(
            "/v1/{book.name=**}",
            &["v1", "**"],
            &[("book.name", 1, 2)],
            None,
        ),
        ok(
            "/v1/books/{id}:archive",
            &["v1", "books", "*"],
            &[("id", 2, 3)],
            Some("archive"),
        ),
        ok("/v1/books:search", &["v1", "books"], &[], Some("search")),
        ok("/v1/*/x/**", &["v1", "*", "x", "**"], &[], None),
        ok(
            "/a/{x}/{y=b/*}",
            &["a", "*", "b", "*"],
            &[("x", 1, 2), ("y", 2, 4)],
            None,
        ),
        ok("/v1/hello%20world", &["v1", "hello world"], &[], None),
        ok(
            "/users/{id}/_reactivate",
            &["users", "*", "_reactivate"],
            &[("id", 1, 2)],
            None,
        ),
        err("v1/books", "syntax error at column 1: expected '/'"),
        err("/v1/{name", "syntax error at column 10: expected '}'"),
        err("/v1/{name=*", "syntax error at column 12: expected '}'"),
        err("/v1/{name/x}", "syntax error at column 10: expected '}'"),
        err(
            "/v1/{1x}",
            "syntax error at column 6: expected a field name",
        ),
        err(
            "/v1/{a.}",
            "syntax error at column 8: expected a field name",
        ),
        err(
            "/v1/{a={b}}",
            "syntax error at column 8: variables cannot be nested",
        ),
        err(
            "/v1//x",
            "syntax error at column 5: expected a path segment",
        ),
        err("/", "syntax error at column 2: expected a path segment"),
        err(
            "/v1/books/",
            "syntax error at column 11: expected a path segment",
        ),
        err(
            "/v1/**/**",
            "syntax error at column 9: only one '**' is allowed",
        ),
        err(
            "/v1/{a}/{a}",
            "syntax error at column 9: variable 'a' bound twice",
        ),
        err(
            "/v1/books:",
            "syntax error at column 11: expected a path segment",
        ),
        err(
            "/v1/books:a:b",
            "syntax error at column 12: expected end of template",
        ),
        err(
            "/v1/b%zz",
            "syntax error at column 6: expected two hex digits after '%'",
        ),
        err(
            "/v1/b?x",
            "syntax error at column 6: expected end of template",
        ),
    ];
    for case in cases {
        match (PathTemplate::parse(case.input), case.want_err) {
            (Ok(t), None) => {
                let segs: Vec<String> = t.segments().iter().map(seg_text).collect();
                assert_eq!(segs, case.want_segments, "{}", case.input);
                let vars: Vec<(&str, usize, usize)> = t
                    .variables()
                    .iter()
                    .map(|v| (v.field_path.as_str(), v.start, v.end))
                    .collect();
                assert_eq!(vars, case.want_vars, "{}", case.input);
                assert_eq!(t.verb(), case.want_verb, "{}", case.input);
                assert_eq!(t.as_str(), case.input);
            }
            (Err(e), Some(want)) => assert_eq!(e.to_string(), want, "{}", case.input),
            (got, want) => panic!("{}: got {got:?}, want error {want:?}", case.input),
        }
    }
}

struct MatchCase {
    template: &'static str,
    input: &'static str,
    want: Option<&'static [(&'static str, &'static str)]>,
}

#[test]
fn match_table() {
    let cases = [
        MatchCase {
            template: "/v1/books",
            input: "/v1/books",
            want: Some(&[]),
        },
        MatchCase {
            template: "/v1/books",
            input: "/v1/books/",
            want: None,
        },
        MatchCase {
            template: "/v1/books",
            input: "v1/books",
            want: None,
        },
        MatchCase {
            template: "/v1/books",
            input: "/v1/book",
            want: None,
        },
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/42",
            want: Some(&[("id", "42")]),
        },
        // An empty segment binds "" (grpc-gateway does too): the handler judges it.
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/",
            want: Some(&[("id", "")]),
        },
        MatchCase {
            template: "/v1/books/{id}/_reactivate",
            input: "/v1/books//_reactivate",
            want: Some(&[("id", "")]),
        },
        MatchCase {
            template: "/v1/{name=shelves/*/books/*}",
            input: "/v1/shelves//books/b",
            want: Some(&[("name", "shelves//books/b")]),
        },
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/4/2",
            want: None,
        },
        // Single-segment variables decode everything, %2F included.
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/a%2Fb%20c",
            want: Some(&[("id", "a/b c")]),
        },
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/caf%C3%A9",
            want: Some(&[("id", "café")]),
        },
        // Invalid escapes and non-UTF-8 values do not match.
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/%zz",
            want: None,
        },
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/%FF",
            want: None,
        },
        MatchCase {
            template: "/v1/{name=shelves/*/books/*}",
            input: "/v1/shelves/s1/books/b%201",
            want: Some(&[("name", "shelves/s1/books/b 1")]),
        },
        MatchCase {
            template: "/v1/{name=shelves/*/books/*}",
            input: "/v1/shelves/s1/books",
            want: None,
        },
        MatchCase {
            template: "/v1/{name=shelves/*/books/*}",
            input: "/v1/shelfs/s1/books/b",
            want: None,
        },
        // Multi-segment variables keep reserved characters encoded.
        MatchCase {
            template: "/v1/files/{path=**}",
            input: "/v1/files/a/b%2Fc/d%20e%3A",
            want: Some(&[("path", "a/b%2Fc/d e%3A")]),
        },
        MatchCase {
            template: "/v1/files/{path=**}",
            input: "/v1/files",
            want: Some(&[("path", "")]),
        },
        MatchCase {
            template: "/v1/files/{path=**}",
            input: "/v1/files/x",
            want: Some(&[("path", "x")]),
        },
        MatchCase {
            template: "/v1/{path=**}/meta",
            input: "/v1/a/b/meta",
            want: Some(&[("path", "a/b")]),
        },
        MatchCase {
            template: "/v1/{path=**}/meta",
            input: "/v1/a/b/data",
            want: None,
        },
        MatchCase {
            template: "/v1/books/{id}:archive",
            input: "/v1/books/7:archive",
            want: Some(&[("id", "7")]),
        },
        MatchCase {
            template: "/v1/books/{id}:archive",
            input: "/v1/books/7",
            want: None,
        },
        MatchCase {
            template: "/v1/books/{id}:archive",
            input: "/v1/books/7:delete",
            want: None,
        },
        MatchCase {
            template: "/v1/books/{id}:archive",
            input: "/v1/books/:archive",
            want: Some(&[("id", "")]),
        },
        // Without a verb in the template, a colon is part of the value.
        MatchCase {
            template: "/v1/books/{id}",
            input: "/v1/books/7:archive",
            want: Some(&[("id", "7:archive")]),
        },
        MatchCase {
            template: "/v1/books:search",
            input: "/v1/books:search",
            want: Some(&[]),
        },
        MatchCase {
            template: "/v1/files/{path=**}:stat",
            input: "/v1/files/a/b:stat",
            want: Some(&[("path", "a/b")]),
        },
        MatchCase {
            template: "/a/{x}/{y=b/*}",
            input: "/a/1/b/2",
            want: Some(&[("x", "1"), ("y", "b/2")]),
        },
        // Percent-encoded literals match their decoded form.
        MatchCase {
            template: "/v1/books",
            input: "/v1/b%6Foks",
            want: Some(&[]),
        },
    ];
    for case in cases {
        let t =
            PathTemplate::parse(case.template).unwrap_or_else(|e| panic!("{}: {e}", case.template));
        let got = t.match_path(case.input);
        let got: Option<Vec<(String, String)>> =
            got.map(|b| b.into_iter().map(|b| (b.field_path, b.value)).collect());
        let want: Option<Vec<(String, String)>> = case.want.map(|w| {
            w.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        assert_eq!(got, want, "{} against {}", case.input, case.template);
    }
}

#[test]
fn percent_decode_table() {
    let cases: [(&str, bool, Option<&str>); 7] = [
        ("plain", false, Some("plain")),
        ("a%20b", false, Some("a b")),
        ("a%2fb", false, Some("a/b")),
        ("a%2fb", true, Some("a%2fb")),
        ("a%", false, None),
        ("a%4", false, None),
        ("%C3%A9", true, Some("é")),
    ];
    for (input, keep, want) in cases {
        assert_eq!(percent_decode(input, keep).as_deref(), want, "{input}");
    }
}
