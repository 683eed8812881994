//! User search through REST, as ZITADEL's clients send it: v1 `POST
//! /management/v1/users/_search` (scoped to the org context) and v2 `POST /v2/users` (every org
//! the caller may read), with text, state, type, org, id and boolean queries, sorting, paging and
//! total counts.

use serde_json::{Value, json};
use switchyard_tests::Server;

struct Api<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn post(&self, path: &str, body: Value, org: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(format!("{}{path}", self.server.url()))
            .header("authorization", self.server.bearer())
            .json(&body);
        if let Some(org) = org {
            request = request.header("x-zitadel-orgid", org);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let value: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn add_human(&self, org: &str, name: &str, first: &str, email: &str) -> String {
        let body = json!({
            "userName": name,
            "profile": {"firstName": first, "lastName": "Searcher", "displayName": format!("{first} Searcher")},
            "email": {"email": email, "isEmailVerified": true},
            "initialPassword": "Secret123!"
        });
        let added = self
            .post("/management/v1/users/human", body, Some(org))
            .await;
        added["userId"].as_str().expect("userId").to_owned()
    }
}

/// `userName`s of a list response, in order.
fn names(list: &Value) -> Vec<String> {
    list["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|u| {
            u["userName"]
                .as_str()
                .or(u["username"].as_str())
                .expect("name")
                .to_owned()
        })
        .collect()
}

fn total(list: &Value) -> u64 {
    list["details"]["totalResult"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .expect("uint64 as string")
}

#[tokio::test]
async fn v1_and_v2_search_with_zitadels_queries() {
    let server = Server::start();
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let org_a = api
        .post("/management/v1/orgs", json!({"name": "Search A"}), None)
        .await["id"]
        .as_str()
        .expect("org")
        .to_owned();
    let org_b = api
        .post("/management/v1/orgs", json!({"name": "Search B"}), None)
        .await["id"]
        .as_str()
        .expect("org")
        .to_owned();
    let anna = api
        .add_human(&org_a, "s-anna", "Anna", "anna@alpha.example")
        .await;
    let _bert = api
        .add_human(&org_a, "s-bert", "Bert", "BERT@alpha.example")
        .await;
    let _carl = api
        .add_human(&org_a, "s-carl", "Carl", "carl@gamma.example")
        .await;
    let dora = api
        .add_human(&org_b, "s-dora", "Dora", "dora@beta.example")
        .await;
    api.post(
        &format!("/management/v1/users/{anna}/_deactivate"),
        json!({}),
        Some(&org_a),
    )
    .await;
    let robot = api
        .post(
            "/management/v1/users/machine",
            json!({"userName": "s-robot", "name": "Robot"}),
            Some(&org_a),
        )
        .await["userId"]
        .as_str()
        .expect("machine")
        .to_owned();

    let v1 = |queries: Value, query: Value, sorting: &str| json!({"query": query, "sortingColumn": sorting, "queries": queries});
    let by_name = json!({"asc": true});
    struct Case {
        name: &'static str,
        body: Value,
        want: Vec<&'static str>,
        total: u64,
    }
    let cases = vec![
        Case {
            name: "org context scopes v1",
            body: v1(json!([]), by_name.clone(), "USER_FIELD_NAME_USER_NAME"),
            want: vec!["s-anna", "s-bert", "s-carl", "s-robot"],
            total: 4,
        },
        Case {
            name: "user name starts with",
            body: v1(
                json!([{"userNameQuery": {"userName": "s-b", "method": "TEXT_QUERY_METHOD_STARTS_WITH"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-bert"],
            total: 1,
        },
        Case {
            name: "email equals, ignoring case",
            body: v1(
                json!([{"emailQuery": {"emailAddress": "bert@ALPHA.example", "method": "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-bert"],
            total: 1,
        },
        Case {
            name: "email contains (case-sensitive)",
            body: v1(
                json!([{"emailQuery": {"emailAddress": "alpha", "method": "TEXT_QUERY_METHOD_CONTAINS"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-anna", "s-bert"],
            total: 2,
        },
        Case {
            name: "display name ends with, ignoring case",
            body: v1(
                json!([{"displayNameQuery": {"displayName": "L SEARCHER", "method": "TEXT_QUERY_METHOD_ENDS_WITH_IGNORE_CASE"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-carl"],
            total: 1,
        },
        Case {
            name: "state",
            body: v1(
                json!([{"stateQuery": {"state": "USER_STATE_INACTIVE"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-anna"],
            total: 1,
        },
        Case {
            name: "type",
            body: v1(
                json!([{"typeQuery": {"type": "TYPE_MACHINE"}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-robot"],
            total: 1,
        },
        Case {
            name: "paging keeps the total; descending",
            body: v1(
                json!([]),
                json!({"offset": "1", "limit": 2, "asc": false}),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-carl", "s-bert"],
            total: 4,
        },
        Case {
            name: "or and not",
            body: v1(
                json!([{"orQuery": {"queries": [
                    {"inUserIdsQuery": {"userIds": [anna, robot]}},
                    {"firstNameQuery": {"firstName": "Carl", "method": "TEXT_QUERY_METHOD_EQUALS"}}
                ]}}, {"notQuery": {"query": {"typeQuery": {"type": "TYPE_MACHINE"}}}}]),
                by_name.clone(),
                "USER_FIELD_NAME_USER_NAME",
            ),
            want: vec!["s-anna", "s-carl"],
            total: 2,
        },
    ];
    for case in cases {
        let list = api
            .post("/management/v1/users/_search", case.body, Some(&org_a))
            .await;
        assert_eq!(names(&list), case.want, "{}", case.name);
        assert_eq!(total(&list), case.total, "{}: {list}", case.name);
    }

    // v2: every org the caller may read (the admin: all), filtered by organization and ids.
    let list = api
        .post(
            "/v2/users",
            json!({"queries": [{"organizationIdQuery": {"organizationId": org_b}}]}),
            None,
        )
        .await;
    assert_eq!(names(&list), vec!["s-dora"]);
    let list = api
        .post(
            "/v2/users",
            json!({
                "query": {"asc": true},
                "sortingColumn": "USER_FIELD_NAME_USER_NAME",
                "queries": [{"userNameQuery": {"userName": "s-", "method": "TEXT_QUERY_METHOD_STARTS_WITH"}}]
            }),
            None,
        )
        .await;
    assert_eq!(
        names(&list),
        vec!["s-anna", "s-bert", "s-carl", "s-dora", "s-robot"]
    );
    assert_eq!(total(&list), 5);
    let list = api
        .post("/v2/users", json!({"queries": [{"inUserIdsQuery": {"userIds": [dora, anna]}}], "query": {"asc": true}, "sortingColumn": "USER_FIELD_NAME_FIRST_NAME"}), None)
        .await;
    assert_eq!(names(&list), vec!["s-anna", "s-dora"]);
    assert_eq!(list["result"][0]["state"], "USER_STATE_INACTIVE");
    assert_eq!(
        list["result"][0]["preferredLoginName"],
        "s-anna@search-a.localhost"
    );

    // Login names carry the org's domain, as the user's `loginNames` say.
    let list = api
        .post(
            "/v2/users",
            json!({"queries": [{"loginNameQuery": {"loginName": "s-dora@search-b.localhost", "method": "TEXT_QUERY_METHOD_EQUALS"}}]}),
            None,
        )
        .await;
    assert_eq!(names(&list), vec!["s-dora"]);
    assert_eq!(
        list["result"][0]["loginNames"],
        json!(["s-dora@search-b.localhost"])
    );

    // A malformed query is INVALID_ARGUMENT, not a crash.
    let response = api
        .http
        .post(format!("{}/v2/users", server.url()))
        .header("authorization", server.bearer())
        .json(&json!({"queries": [{"userNameQuery": {"userName": "x", "method": 42}}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
}
