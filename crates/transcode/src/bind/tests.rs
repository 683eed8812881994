use super::*;
use crate::route_table::{RouteTable, RouteTableBuilder};
use crate::testutil::library_pool;

fn table() -> RouteTable {
    RouteTableBuilder::new(library_pool())
        .build()
        .expect("routes")
}

struct Case {
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    body: &'static str,
    /// The request message as JSON (proto names, zero values omitted).
    want: &'static str,
    want_err: Option<&'static str>,
}

const fn ok(
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    body: &'static str,
    want: &'static str,
) -> Case {
    Case {
        method,
        path,
        query,
        body,
        want,
        want_err: None,
    }
}

const fn err(
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    body: &'static str,
    want_err: &'static str,
) -> Case {
    Case {
        method,
        path,
        query,
        body,
        want: "",
        want_err: Some(want_err),
    }
}

fn render(msg: &DynamicMessage) -> String {
    let opts = JsonOptions {
        use_proto_field_names: true,
        ..JsonOptions::default()
    };
    String::from_utf8(json::encode_message(msg, &opts).unwrap_or_default()).unwrap_or_default()
}

#[test]
fn decode_request_table() {
    let cases = [
        // Path variables: strings, ints, multi-segment.
        ok(
            "GET",
            "/v1/shelves/s1/books/b%201",
            None,
            "",
            r#"{"name":"shelves/s1/books/b 1"}"#,
        ),
        ok("GET", "/v1/books/42", None, "", r#"{"id":"42"}"#),
        err(
            "GET",
            "/v1/books/x",
            None,
            "",
            "invalid value for path variable 'id': 'x' is not a 64-bit integer",
        ),
        ok("DELETE", "/v1/books/-3", None, "", r#"{"id":"-3"}"#),
        // Nested path variables.
        ok(
            "PATCH",
            "/v1/shelves/s1/books/9",
            None,
            r#"{"book":{"title":"T","id":"1"},"allow_missing":true}"#,
            r#"{"book":{"id":"9","shelf":"s1","title":"T"},"allow_missing":true}"#,
        ),
        // Body "*": empty body and {} are both the empty message.
        ok("POST", "/v1/books/7:archive", None, "", r#"{"id":"7"}"#),
        ok("POST", "/v1/books/7:archive", None, " {} ", r#"{"id":"7"}"#),
        ok(
            "POST",
            "/v1/books/7:archive",
            None,
            r#"{"reason":"old"}"#,
            r#"{"id":"7","reason":"old"}"#,
        ),
        // Unknown fields are ignored; proto names and lowerCamelCase both accepted.
        ok(
            "POST",
            "/v1/books/7:archive",
            None,
            r#"{"reason":"x","nope":1}"#,
            r#"{"id":"7","reason":"x"}"#,
        ),
        // A field named twice (by its JSON and its proto name) is refused, as protojson does.
        err(
            "PATCH",
            "/v1/shelves/s/books/1",
            None,
            r#"{"allowMissing":true,"book":{"pageCount":3,"page_count":4}}"#,
            r#"invalid JSON body: field book.pageCount is given twice (as "pageCount" and "page_count") at line 1 column 55"#,
        ),
        // With body "*", the query string is not read.
        ok(
            "POST",
            "/v1/books/7:archive",
            Some("reason=q&bogus=1"),
            "",
            r#"{"id":"7"}"#,
        ),
        // Invalid JSON says where it broke.
        err(
            "POST",
            "/v1/books/7:archive",
            None,
            "{\"reason\":",
            "invalid JSON body: EOF while parsing a value at line 1 column 10",
        ),
        err(
            "POST",
            "/v1/books/7:archive",
            None,
            "{\n  \"reason\": 5\n}",
            "invalid JSON body: invalid type: integer `5`, expected a string at line 2 column 13",
        ),
        err(
            "POST",
            "/v1/books/7:archive",
            None,
            "{} x",
            "invalid JSON body: trailing characters at line 1 column 4",
        ),
        err(
            "POST",
            "/v1/books/7:archive",
            None,
            "[]",
            "invalid JSON body: invalid type: sequence, expected a map at line 1 column 0",
        ),
        // Body "field": a message field.
        ok(
            "POST",
            "/v1/shelves/s1/books",
            Some("shelf=ignored"),
            r#"{"title":"Dune","genre":"GENRE_FICTION","id":"5"}"#,
            r#"{"shelf":"s1","book":{"id":"5","title":"Dune","genre":"GENRE_FICTION"}}"#,
        ),
        ok(
            "POST",
            "/v1/shelves/s1/books",
            None,
            "",
            r#"{"shelf":"s1"}"#,
        ),
        // Body "field": a repeated scalar field.
        ok(
            "PUT",
            "/v1/books/3/tags",
            None,
            r#"["a","b"]"#,
            r#"{"id":"3","tags":["a","b"]}"#,
        ),
        err(
            "PUT",
            "/v1/books/3/tags",
            None,
            r#"["a","#,
            "invalid JSON body: EOF while parsing a value at line 1 column 5",
        ),
        // Query parameters on GET.
        ok(
            "GET",
            "/v1/shelves/s1/books",
            Some(
                "page_size=10&pageToken=abc&filter.author=Le+Guin&filter.genre=GENRE_HISTORY&filter.minYear=1969",
            ),
            "",
            r#"{"shelf":"s1","page_size":10,"page_token":"abc","filter":{"author":"Le Guin","genre":"GENRE_HISTORY","min_year":"1969"}}"#,
        ),
        ok(
            "GET",
            "/v1/shelves/s1/books",
            Some("ids=1&ids=2&genres=1&genres=GENRE_HISTORY&filter.published=true"),
            "",
            r#"{"shelf":"s1","filter":{"published":true},"ids":["1","2"],"genres":["GENRE_FICTION","GENRE_HISTORY"]}"#,
        ),
        ok(
            "GET",
            "/v1/shelves/s1/books",
            Some(
                "updated_after=2024-01-02T03:04:05Z&max_price=9.5&in_stock=false&max_age=1.5s&rating=4.5&cursor=AQID&limit=7&min_pages=0",
            ),
            "",
            r#"{"shelf":"s1","updated_after":"2024-01-02T03:04:05Z","max_price":9.5,"rating":4.5,"cursor":"AQID","limit":7,"in_stock":false,"max_age":"1.500s","min_pages":0}"#,
        ),
        ok(
            "GET",
            "/v1/shelves/s1/books",
            Some("cursor=-_8&&page_token=a%26b"),
            "",
            r#"{"shelf":"s1","page_token":"a&b","cursor":"+/8="}"#,
        ),
        // A path-bound field named again in the query keeps the path's value.
        ok(
            "GET",
            "/v1/shelves/s1/books",
            Some("shelf=s2"),
            "",
            r#"{"shelf":"s1"}"#,
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("bogus=1"),
            "",
            "unknown query parameter 'bogus'",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("filter.bogus=1"),
            "",
            "unknown query parameter 'filter.bogus'",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("page_size=ten"),
            "",
            "invalid value for query parameter 'page_size': 'ten' is not a 32-bit integer",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("page_size=99999999999"),
            "",
            "invalid value for query parameter 'page_size': '99999999999' is not a 32-bit integer",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("limit=-1"),
            "",
            "invalid value for query parameter 'limit': '-1' is not an unsigned 32-bit integer",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("filter.published=yes"),
            "",
            "invalid value for query parameter 'filter.published': 'yes' is not a bool",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("genres=GENRE_NOPE"),
            "",
            "invalid value for query parameter 'genres': 'GENRE_NOPE' is not a value of example.v1.Genre",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("page_size=1&page_size=2"),
            "",
            "invalid value for query parameter 'page_size': given more than once for a non-repeated field",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("filter=x"),
            "",
            "invalid value for query parameter 'filter': example.v1.Filter cannot be set from a string",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("cursor=***"),
            "",
            "invalid value for query parameter 'cursor': '***' is not base64",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("page_token=%zz"),
            "",
            "invalid query string: cannot decode '%zz'",
        ),
        err(
            "GET",
            "/v1/shelves/s1/books",
            Some("page_size.x=1"),
            "",
            "unknown query parameter 'page_size.x'",
        ),
    ];
    let table = table();
    for case in cases {
        let method = http::Method::from_bytes(case.method.as_bytes()).unwrap_or_default();
        let m = table
            .find(&method, case.path)
            .unwrap_or_else(|e| panic!("{} {}: {e}", case.method, case.path));
        let got = decode_request(&m, case.query, case.body.as_bytes(), &strict_query());
        let label = format!(
            "{} {} ? {:?} body {:?}",
            case.method, case.path, case.query, case.body
        );
        match (got, case.want_err) {
            (Ok(msg), None) => assert_eq!(render(&msg), case.want, "{label}"),
            (Err(e), Some(want)) => {
                assert_eq!(e.to_string(), want, "{label}");
                assert_eq!(e.code(), tonic::Code::InvalidArgument, "{label}");
            }
            (got, want) => panic!("{label}: got {got:?}, want error {want:?}"),
        }
    }
}

/// The gateway's `strict_query`: unknown query parameters are an error.
fn strict_query() -> JsonOptions {
    JsonOptions {
        ignore_unknown_query_parameters: false,
        ..JsonOptions::default()
    }
}

#[test]
fn unknown_query_parameters_are_ignored_by_default() {
    let table = table();
    let m = table
        .find(&http::Method::GET, "/v1/shelves/s1/books")
        .expect("route");
    for query in ["_=123", "utm_source=x&page_size=3", "filter.bogus=1"] {
        let msg = decode_request(&m, Some(query), b"", &JsonOptions::default())
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let want = if query.contains("page_size") {
            r#"{"shelf":"s1","page_size":3}"#
        } else {
            r#"{"shelf":"s1"}"#
        };
        assert_eq!(render(&msg), want, "{query}");
    }
    // A known parameter with a bad value is still an error.
    let got = decode_request(&m, Some("_=1&page_size=ten"), b"", &JsonOptions::default());
    assert!(got.is_err(), "{got:?}");
}

#[test]
fn deny_unknown_fields_option() {
    let table = table();
    let m = table
        .find(&http::Method::POST, "/v1/books/7:archive")
        .expect("route");
    let opts = JsonOptions {
        ignore_unknown_fields: false,
        ..JsonOptions::default()
    };
    let got = decode_request(&m, None, br#"{"nope":1}"#, &opts).map(|_| ());
    assert!(
        matches!(&got, Err(TranscodeError::InvalidJson(e)) if e.to_string().contains("nope")),
        "{got:?}"
    );
}

#[test]
fn parse_query_table() {
    type Pairs = Vec<(&'static str, &'static str)>;
    let cases: [(&str, Result<Pairs, &str>); 6] = [
        ("", Ok(vec![])),
        ("a=1", Ok(vec![("a", "1")])),
        ("a=1&&b", Ok(vec![("a", "1"), ("b", "")])),
        ("a+b=c+d%2B", Ok(vec![("a b", "c d+")])),
        ("x=%E2%9C%93", Ok(vec![("x", "✓")])),
        ("x=%FF", Err("invalid query string: cannot decode '%FF'")),
    ];
    for (input, want) in cases {
        let got = parse_query(input).map_err(|e| e.to_string());
        let want = want
            .map(|v| {
                v.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .map_err(str::to_owned);
        assert_eq!(got, want, "{input}");
    }
}
