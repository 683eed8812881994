use super::*;
use crate::testutil::library_pool;

fn table() -> RouteTable {
    RouteTableBuilder::new(library_pool())
        .service_prefix("example.v1.AdminService", "/admin/v1/")
        .build()
        .expect("library routes build")
}

struct Case {
    method: http::Method,
    input: &'static str,
    /// gRPC path and bindings.
    want: Option<(&'static str, &'static [(&'static str, &'static str)])>,
    want_err: Option<RouteError>,
}

#[test]
fn find_table() {
    use http::Method;
    let ok = |method, input, grpc, bindings| Case {
        method,
        input,
        want: Some((grpc, bindings)),
        want_err: None,
    };
    let err = |method, input, e| Case {
        method,
        input,
        want: None,
        want_err: Some(e),
    };
    let svc = "/example.v1.LibraryService/";
    let cases = [
        ok(
            Method::GET,
            "/v1/shelves/s1/books/b1",
            "GetBook",
            &[("name", "shelves/s1/books/b1")],
        ),
        // additional_bindings are routes too.
        ok(Method::GET, "/v1/books/42", "GetBook", &[("id", "42")]),
        // A literal beats a variable, whatever the declaration order.
        ok(Method::GET, "/v1/books/latest", "GetShelfLatest", &[]),
        ok(Method::GET, "/v1/books:search", "SearchBooks", &[]),
        ok(
            Method::POST,
            "/v1/books/7:archive",
            "ArchiveBook",
            &[("id", "7")],
        ),
        ok(Method::DELETE, "/v1/books/7", "DeleteBook", &[("id", "7")]),
        ok(
            Method::GET,
            "/v1/shelves/s1/books",
            "ListBooks",
            &[("shelf", "s1")],
        ),
        ok(
            Method::POST,
            "/v1/shelves/s1/books",
            "CreateBook",
            &[("shelf", "s1")],
        ),
        ok(
            Method::PATCH,
            "/v1/shelves/s1/books/9",
            "UpdateBook",
            &[("book.shelf", "s1"), ("book.id", "9")],
        ),
        ok(
            Method::GET,
            "/v1/files/a/b%2Fc",
            "GetFile",
            &[("path", "a/b%2Fc")],
        ),
        ok(
            Method::GET,
            "/v1/books/3/title",
            "GetBookTitle",
            &[("id", "3")],
        ),
        ok(Method::PUT, "/v1/books/3/tags", "SetTags", &[("id", "3")]),
        ok(
            Method::from_bytes(b"SEARCH").unwrap_or_default(),
            "/v1/books/3",
            "Describe",
            &[("id", "3")],
        ),
        // Query strings left on the path are ignored.
        ok(Method::GET, "/v1/books/42?x=1", "GetBook", &[("id", "42")]),
        err(Method::GET, "/v2/books/42", RouteError::NotFound),
        err(Method::GET, "/", RouteError::NotFound),
        err(Method::GET, "", RouteError::NotFound),
        err(
            Method::PUT,
            "/v1/books/42",
            RouteError::MethodNotAllowed {
                allowed: vec![
                    Method::GET,
                    Method::HEAD,
                    Method::DELETE,
                    Method::from_bytes(b"SEARCH").unwrap_or_default(),
                ],
            },
        ),
        // ArchiveBook is POST only: GET falls through to `/v1/books/{id}`.
        ok(
            Method::GET,
            "/v1/books/7:archive",
            "GetBook",
            &[("id", "7:archive")],
        ),
        // HEAD takes the GET route.
        ok(Method::HEAD, "/v1/books/42", "GetBook", &[("id", "42")]),
        ok(Method::HEAD, "/v1/books/latest", "GetShelfLatest", &[]),
        // HEAD is allowed wherever GET is.
        err(
            Method::PATCH,
            "/v1/books:search",
            RouteError::MethodNotAllowed {
                allowed: vec![Method::GET, Method::HEAD],
            },
        ),
        // An empty segment binds "".
        ok(Method::GET, "/v1/books/", "GetBook", &[("id", "")]),
        // The prefix applies to AdminService only.
        err(Method::POST, "/books/1/_reactivate", RouteError::NotFound),
    ];
    let table = table();
    for case in cases {
        let got = table.find(&case.method, case.input);
        match (got, case.want, case.want_err) {
            (Ok(m), Some((grpc, bindings)), None) => {
                assert_eq!(
                    m.route().grpc_path(),
                    format!("{svc}{grpc}"),
                    "{}",
                    case.input
                );
                let got: Vec<(&str, &str)> = m
                    .bindings()
                    .iter()
                    .map(|b| (b.field_path.as_str(), b.value.as_str()))
                    .collect();
                assert_eq!(got, bindings, "{}", case.input);
            }
            (Err(e), None, Some(want)) => assert_eq!(e, want, "{}", case.input),
            (got, want, want_err) => {
                panic!(
                    "{} {}: got {got:?}, want {want:?} / {want_err:?}",
                    case.method, case.input
                )
            }
        }
    }
}

#[test]
fn prefix_mounts_service() {
    let table = table();
    let m = table
        .find(&http::Method::POST, "/admin/v1/books/u1/_reactivate")
        .expect("prefixed route");
    assert_eq!(m.route().grpc_path(), "/example.v1.AdminService/Reactivate");
    assert_eq!(
        m.route().template().as_str(),
        "/admin/v1/books/{id}/_reactivate"
    );
    assert_eq!(m.bindings()[0].value, "u1");
    assert_eq!(*m.route().body(), BodySpec::Whole);
    // `//` reaches the route with an empty id, as in grpc-gateway (ZITADEL's handler then
    // answers INVALID_ARGUMENT).
    let m = table
        .find(&http::Method::POST, "/admin/v1/books//_reactivate")
        .expect("empty segment");
    assert_eq!(m.route().grpc_path(), "/example.v1.AdminService/Reactivate");
    assert_eq!(m.bindings()[0].value, "");
}

#[test]
fn route_details() {
    let table = table();
    let by_grpc = |name: &str| {
        table
            .routes()
            .iter()
            .find(|r| r.grpc_path().ends_with(name))
            .cloned()
            .unwrap_or_else(|| panic!("route {name}"))
    };
    let create = by_grpc("/CreateBook");
    assert!(matches!(create.body(), BodySpec::Field(f) if f.name() == "book"));
    assert_eq!(
        create.method().input().full_name(),
        "example.v1.CreateBookRequest"
    );
    assert_eq!(by_grpc("/ListBooks").body(), &BodySpec::None);
    assert_eq!(
        by_grpc("/GetBookTitle").response_body().map(|f| f.name()),
        Some("title")
    );
    // Methods without an annotation get no route; GetBook has two.
    assert!(
        !table
            .routes()
            .iter()
            .any(|r| r.grpc_path().ends_with("/Internal"))
    );
    assert_eq!(
        table
            .routes()
            .iter()
            .filter(|r| r.grpc_path().ends_with("/GetBook"))
            .count(),
        2
    );
}

#[test]
fn specificity_table() {
    // (more specific, less specific)
    let cases = [
        ("/v1/books/latest", "/v1/books/{id}"),
        ("/v1/books/{id}", "/v1/books/{id=**}"),
        ("/v1/books/{id}/title", "/v1/books/{id}"),
        ("/v1/books/{id}:archive", "/v1/books/{id}"),
        ("/v1/a/{x}", "/v1/{y}/b"),
        ("/v1/files/x/{p=**}", "/v1/files/{p=**}"),
    ];
    for (more, less) in cases {
        let (a, b) = match (PathTemplate::parse(more), PathTemplate::parse(less)) {
            (Ok(a), Ok(b)) => (a, b),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            specificity_cmp(&a, &b),
            Ordering::Greater,
            "{more} vs {less}"
        );
    }
}

#[test]
fn build_errors() {
    let pool = library_pool();
    let err = RouteTableBuilder::new(pool)
        .service_prefix("example.v1.AdminService", "admin")
        .build()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("service 'example.v1.AdminService': path prefix 'admin' must start with '/'")
    );
}

#[test]
fn empty_pool_has_no_routes() {
    let table = RouteTableBuilder::new(DescriptorPool::new())
        .build()
        .expect("empty");
    assert_eq!(
        table.find(&http::Method::GET, "/x").err(),
        Some(RouteError::NotFound)
    );
}
