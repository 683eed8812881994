use super::*;
use crate::route_table::{RouteTable, RouteTableBuilder};
use crate::testutil::library_pool;

fn table() -> RouteTable {
    RouteTableBuilder::new(library_pool())
        .build()
        .expect("routes")
}

/// A Book with the given JSON (proto names accepted).
fn book(table: &RouteTable, json: &str) -> DynamicMessage {
    let desc = table
        .pool()
        .get_message_by_name("example.v1.Book")
        .expect("Book");
    parse_message(desc, json.as_bytes(), &JsonOptions::default()).expect("book JSON")
}

struct Case {
    /// Route picked by gRPC method name.
    method: &'static str,
    input: &'static str,
    opts: JsonOptions,
    want: &'static str,
}

#[test]
fn encode_response_table() {
    let defaults = JsonOptions::default;
    let cases = [
        // lowerCamelCase, 64-bit ints as strings, zero values omitted, enums by name.
        Case {
            method: "GetBook",
            input: r#"{"id":"12","page_count":300,"genre":"GENRE_FICTION","price":0,"title":"","isbn":"18446744073709551615"}"#,
            opts: defaults(),
            want: r#"{"id":"12","genre":"GENRE_FICTION","pageCount":300,"isbn":"18446744073709551615"}"#,
        },
        Case {
            method: "GetBook",
            input: r#"{"create_time":"2024-01-02T03:04:05.500Z","tags":["a"]}"#,
            opts: defaults(),
            want: r#"{"tags":["a"],"createTime":"2024-01-02T03:04:05.500Z"}"#,
        },
        Case {
            method: "GetBook",
            input: r#"{"id":"1"}"#,
            opts: JsonOptions {
                emit_unpopulated: true,
                ..defaults()
            },
            want: r#"{"name":"","id":"1","shelf":"","title":"","genre":"GENRE_UNSPECIFIED","pageCount":0,"price":0.0,"tags":[],"published":false,"isbn":"0"}"#,
        },
        Case {
            method: "GetBook",
            input: r#"{"page_count":1,"genre":"GENRE_HISTORY"}"#,
            opts: JsonOptions {
                use_proto_field_names: true,
                use_enum_numbers: true,
                ..defaults()
            },
            want: r#"{"genre":2,"page_count":1}"#,
        },
        Case {
            method: "GetBook",
            input: "{}",
            opts: defaults(),
            want: "{}",
        },
        // response_body: a scalar, present or zero.
        Case {
            method: "GetBookTitle",
            input: r#"{"title":"Dune","id":"3"}"#,
            opts: defaults(),
            want: r#""Dune""#,
        },
        Case {
            method: "GetBookTitle",
            input: "{}",
            opts: defaults(),
            want: r#""""#,
        },
        // response_body: a repeated field, present or empty.
        Case {
            method: "GetBookTags",
            input: r#"{"tags":["x","y"]}"#,
            opts: defaults(),
            want: r#"["x","y"]"#,
        },
        Case {
            method: "GetBookTags",
            input: "{}",
            opts: defaults(),
            want: "[]",
        },
    ];
    let table = table();
    for case in cases {
        let route = table
            .routes()
            .iter()
            .find(|r| r.method().name() == case.method)
            .unwrap_or_else(|| panic!("route {}", case.method));
        let got = encode_response(route, &book(&table, case.input), &case.opts).expect("encodes");
        assert_eq!(
            String::from_utf8_lossy(&got),
            case.want,
            "{} {}",
            case.method,
            case.input
        );
    }
}

#[test]
fn parse_message_table() {
    struct ParseCase {
        input: &'static str,
        want: &'static str,
        want_err: Option<&'static str>,
    }
    let cases = [
        ParseCase {
            input: "",
            want: "{}",
            want_err: None,
        },
        ParseCase {
            input: "  \n",
            want: "{}",
            want_err: None,
        },
        ParseCase {
            input: r#"{"pageCount":5}"#,
            want: r#"{"pageCount":5}"#,
            want_err: None,
        },
        ParseCase {
            input: r#"{"page_count":"5"}"#,
            want: r#"{"pageCount":5}"#,
            want_err: None,
        },
        ParseCase {
            input: r#"{"genre":2}"#,
            want: r#"{"genre":"GENRE_HISTORY"}"#,
            want_err: None,
        },
        ParseCase {
            input: r#"{"pageCount":"x"}"#,
            want: "",
            want_err: Some("invalid JSON body: invalid digit found in string at line 1 column 16"),
        },
        ParseCase {
            input: r#"{"createTime":"yesterday"}"#,
            want: "",
            want_err: Some("invalid JSON body"),
        },
        ParseCase {
            input: "nul",
            want: "",
            want_err: Some("invalid JSON body: EOF while parsing a value at line 1 column 3"),
        },
    ];
    let table = table();
    let desc = table
        .pool()
        .get_message_by_name("example.v1.Book")
        .expect("Book");
    for case in cases {
        let got = parse_message(desc.clone(), case.input.as_bytes(), &JsonOptions::default());
        match (got, case.want_err) {
            (Ok(msg), None) => {
                let json = encode_message(&msg, &JsonOptions::default()).expect("encodes");
                assert_eq!(String::from_utf8_lossy(&json), case.want, "{}", case.input);
            }
            (Err(e), Some(want)) => assert!(e.to_string().starts_with(want), "{}: {e}", case.input),
            (got, want) => panic!("{}: got {got:?}, want error {want:?}", case.input),
        }
    }
}

#[test]
fn strict_json_table() {
    struct StrictCase {
        message: &'static str,
        input: &'static str,
        /// `None`: accepted; else a piece of the error.
        want_err: Option<&'static str>,
    }
    let ok = |message, input| StrictCase {
        message,
        input,
        want_err: None,
    };
    let err = |message, input, want| StrictCase {
        message,
        input,
        want_err: Some(want),
    };
    const LIST: &str = "example.v1.ListBooksRequest";
    const BOOK: &str = "example.v1.Book";
    const CREATE: &str = "example.v1.CreateBookRequest";
    let cases = [
        // Duplicates, by either name.
        err(
            LIST,
            r#"{"pageSize":1,"pageSize":2}"#,
            "field pageSize is given twice",
        ),
        err(
            LIST,
            r#"{"pageSize":1,"page_size":2}"#,
            r#"(as "pageSize" and "page_size")"#,
        ),
        err(
            CREATE,
            r#"{"book":{"title":"a","title":"b"}}"#,
            "field book.title is given twice",
        ),
        err(
            LIST,
            r#"{"filter":{"author":"a"},"filter":{}}"#,
            "field filter is given twice",
        ),
        err(
            LIST,
            r#"{"labels":{"a":"1","a":"2"}}"#,
            r#"field labels: map key "a" is given twice"#,
        ),
        ok(LIST, r#"{"labels":{"a":"1","b":"2"},"pageSize":3}"#),
        // Unknown keys are not checked here (ignored by default).
        ok(LIST, r#"{"nope":1,"nope":2}"#),
        // Integer ranges: numbers, strings, floats, list elements.
        ok(BOOK, r#"{"isbn":"18446744073709551615"}"#),
        ok(BOOK, r#"{"isbn":18446744073709551615}"#),
        err(
            BOOK,
            r#"{"isbn":18446744073709551616}"#,
            "field isbn: 18446744073709552000 is out of range for uint64",
        ),
        err(
            BOOK,
            r#"{"isbn":"18446744073709551616"}"#,
            "out of range for uint64",
        ),
        err(
            BOOK,
            r#"{"isbn":-1}"#,
            "field isbn: -1 is out of range for uint64",
        ),
        err(
            BOOK,
            r#"{"id":9223372036854775808}"#,
            "field id: 9223372036854775808 is out of range for int64",
        ),
        ok(BOOK, r#"{"id":-9223372036854775808}"#),
        err(
            BOOK,
            r#"{"pageCount":2147483648}"#,
            "field pageCount: 2147483648 is out of range for int32",
        ),
        ok(BOOK, r#"{"pageCount":-2147483648}"#),
        err(BOOK, r#"{"pageCount":1e10}"#, "out of range for int32"),
        ok(BOOK, r#"{"pageCount":1e3}"#),
        err(
            LIST,
            r#"{"limit":4294967296}"#,
            "field limit: 4294967296 is out of range for uint32",
        ),
        err(
            LIST,
            r#"{"ids":[1,"99999999999999999999"]}"#,
            "field ids: 99999999999999999999 is out of range for int64",
        ),
        err(LIST, r#"{"minPages":2147483648}"#, "out of range for int32"),
        err(BOOK, r#"{"genre":4294967296}"#, "out of range for enum"),
        ok(BOOK, r#"{"genre":"GENRE_HISTORY","tags":["a","a"]}"#),
        // Errors keep serde_json's position.
        err(BOOK, r#"{"isbn":1,"isbn":2}"#, "at line 1 column"),
    ];
    let table = table();
    for case in cases {
        let desc = table
            .pool()
            .get_message_by_name(case.message)
            .expect("message");
        let got = parse_message(desc, case.input.as_bytes(), &JsonOptions::default());
        match (got, case.want_err) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("invalid JSON body"),
                    "{}: {text}",
                    case.input
                );
                assert!(text.contains(want), "{}: {text} lacks {want}", case.input);
            }
            (got, want) => panic!("{}: got {got:?}, want error {want:?}", case.input),
        }
    }
}
