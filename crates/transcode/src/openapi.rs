//! OpenAPI 3.1 from the route table: one operation per REST route, schemas from the messages
//! under their proto3 JSON names, descriptions from the proto comments, the REST error body
//! as the default response, and bearer authentication. [`OpenApiOptions`] add what the
//! descriptors do not say: header parameters a service reads (ZITADEL's `x-zitadel-orgid`),
//! `servers`, and the title and description (by default naming every served service).
//!
//! This module only renders a document; serving it (`GET /openapi.json`) and printing it
//! (`switchyard openapi`) belong to the gateway and the binary.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::bind::is_http_body;
use crate::path_template::Segment;
use crate::route_table::{BodySpec, Route, RouteTable};

/// The name of the error schema in `components.schemas`.
const ERROR_SCHEMA: &str = "google.rpc.Status";

/// What the document says beyond the routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenApiOptions {
    /// `info.title`; by default the served packages, comma-separated.
    pub title: Option<String>,
    /// `info.description`; by default a list of the served services with their comments.
    pub description: Option<String>,
    /// `servers[].url`; by default one relative server, `/` (the host that served the document).
    pub servers: Vec<String>,
    /// Header parameters by service full name: each operation of that service lists them.
    pub headers: Vec<(String, HeaderParameter)>,
}

/// A request header an operation reads, as an OpenAPI `in: header` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderParameter {
    /// The header name, e.g. `x-zitadel-orgid`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether every call must send it.
    pub required: bool,
}

/// Renders the OpenAPI 3.1 document for every route in `table`, with default options.
pub fn render(table: &RouteTable) -> Value {
    render_with(table, &OpenApiOptions::default())
}

/// Renders the OpenAPI 3.1 document for every route in `table`.
pub fn render_with(table: &RouteTable, options: &OpenApiOptions) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in table.routes() {
        let (path, params) = openapi_path(route);
        let service = route.method().parent_service().full_name().to_owned();
        let headers: Vec<&HeaderParameter> = options
            .headers
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, h)| h)
            .collect();
        let mut op = operation(route, params, &headers, &mut schemas);
        // operationId must be unique: additional bindings get a suffix.
        let base = format!(
            "{}_{}",
            route.method().parent_service().name(),
            route.method().name()
        );
        let seen = ids.entry(base.clone()).or_insert(0);
        *seen += 1;
        let id = if *seen == 1 {
            base
        } else {
            format!("{base}{seen}")
        };
        if let Some(obj) = op.as_object_mut() {
            obj.insert("operationId".into(), Value::String(id));
        }
        // OpenAPI path items only know the standard methods; a custom HttpRule method is
        // kept as a specification extension (`x-search`).
        let method = route.http_method().as_str().to_ascii_lowercase();
        let key = match method.as_str() {
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace" => method,
            _ => format!("x-{method}"),
        };
        paths.entry(path).or_default().insert(key, op);
    }
    let mut components = schemas.render();
    components.insert(
        ERROR_SCHEMA.to_owned(),
        json!({
            "type": "object",
            "description": "The error body: the gRPC code, a message and typed details.",
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": true
                }}
            }
        }),
    );
    let services = served_services(table);
    let title = options.title.clone().unwrap_or_else(|| {
        let packages: BTreeSet<&str> = services
            .iter()
            .map(|s| s.package_name())
            .filter(|p| !p.is_empty())
            .collect();
        if packages.is_empty() {
            "API".to_owned()
        } else {
            packages.into_iter().collect::<Vec<_>>().join(", ")
        }
    });
    let tags: Vec<Value> = services
        .iter()
        .map(|s| {
            let mut tag = json!({"name": s.full_name()});
            if let (Some(doc), Some(obj)) = (service_doc(s), tag.as_object_mut()) {
                obj.insert("description".into(), Value::String(doc));
            }
            tag
        })
        .collect();
    let description = options.description.clone().unwrap_or_else(|| {
        let mut out = String::from("REST (JSON) operations of these gRPC services:\n");
        for s in &services {
            out.push_str(&format!("\n- `{}`", s.full_name()));
            if let Some(doc) = service_doc(s).and_then(|d| d.lines().next().map(str::to_owned)) {
                out.push_str(&format!(": {doc}"));
            }
        }
        out
    });
    let servers: Vec<Value> = if options.servers.is_empty() {
        vec![json!({"url": "/", "description": "The host that serves this document"})]
    } else {
        options.servers.iter().map(|u| json!({"url": u})).collect()
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": "1.0.0"},
        "servers": servers,
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}

/// The services with at least one route, in the order of their first route.
fn served_services(table: &RouteTable) -> Vec<prost_reflect::ServiceDescriptor> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for route in table.routes() {
        let service = route.method().parent_service();
        if seen.insert(service.full_name().to_owned()) {
            out.push(service.clone());
        }
    }
    out.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    out
}

/// The comment of a service in its file.
fn service_doc(service: &prost_reflect::ServiceDescriptor) -> Option<String> {
    comments(
        service.parent_file().file_descriptor_proto(),
        service.path(),
    )
}

/// [`render`] as pretty-printed bytes.
pub fn render_bytes(table: &RouteTable) -> Vec<u8> {
    render_bytes_with(table, &OpenApiOptions::default())
}

/// [`render_with`] as pretty-printed bytes.
pub fn render_bytes_with(table: &RouteTable, options: &OpenApiOptions) -> Vec<u8> {
    serde_json::to_vec_pretty(&render_with(table, options)).unwrap_or_default()
}

/// The OpenAPI path (`/v1/{name}`; multi-segment and nested variables keep their field
/// path as the parameter name) and the path parameters with their fields.
fn openapi_path(route: &Route) -> (String, Vec<(String, Option<FieldDescriptor>)>) {
    let template = route.template();
    let segments = template.segments();
    let mut out = String::new();
    let mut params = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        if let Some(var) = template.variables().iter().find(|v| v.start == i) {
            out.push_str(&format!("/{{{}}}", var.field_path));
            let field = crate::bind::resolve_field_path(&route.method().input(), &var.field_path)
                .ok()
                .and_then(|p| p.last().cloned());
            params.push((var.field_path.clone(), field));
            i = var.end.max(i + 1);
            continue;
        }
        match segments.get(i) {
            Some(Segment::Literal(lit)) => {
                out.push('/');
                out.push_str(lit);
            }
            Some(Segment::Wildcard | Segment::DeepWildcard) => {
                // An anonymous wildcard still needs a declared parameter.
                let name = format!("_{}", params.len());
                out.push_str(&format!("/{{{name}}}"));
                params.push((name, None));
            }
            None => {}
        }
        i += 1;
    }
    if let Some(verb) = template.verb() {
        out.push(':');
        out.push_str(verb);
    }
    (out, params)
}

fn operation(
    route: &Route,
    path_params: Vec<(String, Option<FieldDescriptor>)>,
    headers: &[&HeaderParameter],
    schemas: &mut Schemas,
) -> Value {
    let method = route.method();
    let input = method.input();
    let mut parameters: Vec<Value> = path_params
        .iter()
        .map(|(name, field)| {
            let schema = field
                .as_ref()
                .map_or_else(|| json!({"type": "string"}), |f| schemas.field(f));
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    for (name, field) in query_fields(route, &path_params) {
        let schema = schemas.field(&field);
        let mut p = json!({"name": name, "in": "query", "schema": schema});
        if field.is_list()
            && let Some(obj) = p.as_object_mut()
        {
            obj.insert("explode".into(), Value::Bool(true));
        }
        parameters.push(p);
    }
    for header in headers {
        parameters.push(json!({
            "name": header.name,
            "in": "header",
            "required": header.required,
            "description": header.description,
            "schema": {"type": "string"}
        }));
    }
    let mut op = Map::new();
    op.insert(
        "operationId".into(),
        Value::String(format!(
            "{}_{}",
            method.parent_service().name(),
            method.name()
        )),
    );
    op.insert(
        "tags".into(),
        json!([method.parent_service().full_name().to_owned()]),
    );
    if let Some(doc) = comments(method.parent_file().file_descriptor_proto(), method.path()) {
        op.insert("description".into(), Value::String(doc));
    }
    op.insert("parameters".into(), Value::Array(parameters));
    let body_schema = match route.body() {
        BodySpec::None => None,
        BodySpec::Whole if is_http_body(&input) => Some(schemas.message(&input)),
        BodySpec::Whole => Some(whole_body_schema(&input, &path_params, schemas)),
        BodySpec::Field(f) => Some(schemas.field(f)),
    };
    if let Some(schema) = body_schema {
        let media = if body_is_http_body(route) {
            "*/*"
        } else {
            "application/json"
        };
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {media: {"schema": schema}}}),
        );
    }
    let output = method.output();
    let (media, schema) = match route.response_body() {
        Some(f) => ("application/json", schemas.field(f)),
        None if is_http_body(&output) => ("*/*", json!({})),
        None => ("application/json", schemas.message(&output)),
    };
    let ok = if method.is_server_streaming() {
        json!({"description": "A stream of messages, one JSON object per line: {\"result\": ...}, or {\"error\": ...} at the end; Server-Sent Events with Accept: text/event-stream.",
               "content": {"application/x-ndjson": {"schema": {"type": "object", "properties": {"result": schema, "error": {"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")}}}},
                           "text/event-stream": {"schema": {"type": "string"}}}})
    } else {
        json!({"description": "OK", "content": {media: {"schema": schema}}})
    };
    op.insert(
        "responses".into(),
        json!({
            "200": ok,
            "default": {
                "description": "An error",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")}}}
            }
        }),
    );
    Value::Object(op)
}

/// The schema of a `body: "*"` request: the input message without the top-level fields the
/// path binds (they are not read from the body). With no such field it is the message's own
/// schema; otherwise an inline object of the remaining fields.
fn whole_body_schema(
    input: &MessageDescriptor,
    path_params: &[(String, Option<FieldDescriptor>)],
    schemas: &mut Schemas,
) -> Value {
    let bound: BTreeSet<&str> = path_params
        .iter()
        .filter(|(name, _)| !name.contains('.'))
        .map(|(name, _)| name.as_str())
        .collect();
    if bound.is_empty() || well_known(input.full_name()).is_some() {
        return schemas.message(input);
    }
    let mut props = Map::new();
    for field in input.fields() {
        if bound.contains(field.name()) {
            continue;
        }
        props.insert(field.json_name().to_owned(), schemas.field(&field));
    }
    let mut schema = json!({"type": "object", "properties": props});
    if let (Some(doc), Some(obj)) = (
        comments(input.parent_file().file_descriptor_proto(), input.path()),
        schema.as_object_mut(),
    ) {
        obj.insert(
            "description".into(),
            Value::String(format!(
                "{doc}\n\n(`{}` without the fields bound from the path.)",
                input.full_name()
            )),
        );
    }
    schema
}

fn body_is_http_body(route: &Route) -> bool {
    match route.body() {
        BodySpec::Whole => is_http_body(&route.method().input()),
        BodySpec::Field(f) => matches!(f.kind(), Kind::Message(m) if is_http_body(&m)),
        BodySpec::None => false,
    }
}

/// Query parameters: every scalar (or string-convertible) leaf not bound by the path or the
/// body, one level of nesting per message field (`filter.min_year`), no recursion loops.
fn query_fields(
    route: &Route,
    path_params: &[(String, Option<FieldDescriptor>)],
) -> Vec<(String, FieldDescriptor)> {
    if matches!(route.body(), BodySpec::Whole) {
        return Vec::new();
    }
    let body_field = match route.body() {
        BodySpec::Field(f) => Some(f.name().to_owned()),
        _ => None,
    };
    let bound: BTreeSet<String> = path_params.iter().map(|(n, _)| n.clone()).collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    collect_query(
        &route.method().input(),
        "",
        &bound,
        body_field.as_deref(),
        &mut seen,
        &mut out,
    );
    out
}

fn collect_query(
    desc: &MessageDescriptor,
    prefix: &str,
    bound: &BTreeSet<String>,
    body_field: Option<&str>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<(String, FieldDescriptor)>,
) {
    if !seen.insert(desc.full_name().to_owned()) {
        return;
    }
    for field in desc.fields() {
        let name = format!("{prefix}{}", field.name());
        if bound.contains(&name) || (prefix.is_empty() && Some(field.name()) == body_field) {
            continue;
        }
        if field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::Message(m) if !crate::bind::is_bindable_leaf(&field) => {
                if !field.is_list() {
                    collect_query(&m, &format!("{name}."), bound, None, seen, out);
                }
            }
            _ => out.push((name, field)),
        }
    }
    seen.remove(desc.full_name());
}

/// The comments of the element at `path` in `file`, trimmed.
fn comments(file: &prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let info = file.source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc
        .leading_comments
        .as_deref()
        .or(loc.trailing_comments.as_deref())?;
    let text = text
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned();
    (!text.is_empty()).then_some(text)
}

/// Message and enum schemas, collected as they are referenced.
#[derive(Default)]
struct Schemas {
    messages: BTreeMap<String, MessageDescriptor>,
    enums: BTreeMap<String, EnumDescriptor>,
    pending: Vec<MessageDescriptor>,
}

impl Schemas {
    fn message(&mut self, desc: &MessageDescriptor) -> Value {
        if let Some(wkt) = well_known(desc.full_name()) {
            return wkt;
        }
        if !self.messages.contains_key(desc.full_name()) {
            self.messages
                .insert(desc.full_name().to_owned(), desc.clone());
            self.pending.push(desc.clone());
        }
        json!({"$ref": format!("#/components/schemas/{}", desc.full_name())})
    }

    fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => entry
                    .map_entry_value_field()
                    .pipe(|v| self.single(&v.kind())),
                _ => json!({}),
            };
            return json!({"type": "object", "additionalProperties": value});
        }
        let single = self.single(&field.kind());
        if field.is_list() {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    fn single(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Enum(e) => {
                self.enums.insert(e.full_name().to_owned(), e.clone());
                json!({"$ref": format!("#/components/schemas/{}", e.full_name())})
            }
            Kind::Message(m) => self.message(m),
        }
    }

    fn render(mut self) -> Map<String, Value> {
        let mut out = Map::new();
        while let Some(desc) = self.pending.pop() {
            let mut props = Map::new();
            for field in desc.fields() {
                let mut schema = self.field(&field);
                if let Some(doc) =
                    comments(desc.parent_file().file_descriptor_proto(), field.path())
                {
                    schema = json!({"allOf": [schema], "description": doc});
                }
                props.insert(field.json_name().to_owned(), schema);
            }
            let mut schema = json!({"type": "object", "properties": props});
            if let (Some(doc), Some(obj)) = (
                comments(desc.parent_file().file_descriptor_proto(), desc.path()),
                schema.as_object_mut(),
            ) {
                obj.insert("description".into(), Value::String(doc));
            }
            out.insert(desc.full_name().to_owned(), schema);
        }
        for (name, e) in self.enums {
            let values: Vec<Value> = e
                .values()
                .map(|v| Value::String(v.name().to_owned()))
                .collect();
            out.insert(name, json!({"type": "string", "enum": values}));
        }
        out
    }
}

/// Tiny helper so a closure can follow an expression.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

/// Schemas of the well-known types with a special JSON form.
fn well_known(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": ["integer", "null"]})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": ["string", "null"]})
        }
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => json!({"type": ["string", "null"], "format": "byte"}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RouteTableBuilder;
    use crate::testutil::library_pool;

    #[test]
    fn document_has_paths_schemas_and_security() {
        let table = RouteTableBuilder::new(library_pool())
            .build()
            .expect("routes");
        let doc = render(&table);
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(!paths.is_empty());
        // Every $ref resolves.
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        // Path parameters appear in their path.
        for (path, item) in paths {
            for op in item.as_object().expect("item").values() {
                for p in op["parameters"].as_array().expect("params") {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap_or_default();
                        assert!(path.contains(&format!("{{{name}}}")), "{path} lacks {name}");
                    }
                }
            }
        }
    }

    #[test]
    fn options_add_headers_servers_and_name_every_service() {
        let table = RouteTableBuilder::new(library_pool())
            .service_prefix("example.v1.AdminService", "/admin/v1")
            .build()
            .expect("routes");
        let options = OpenApiOptions {
            servers: vec!["https://api.example.com".into()],
            headers: vec![(
                "example.v1.AdminService".into(),
                HeaderParameter {
                    name: "x-org".into(),
                    description: "The organization".into(),
                    required: false,
                },
            )],
            ..OpenApiOptions::default()
        };
        let doc = render_with(&table, &options);
        assert_eq!(doc["servers"][0]["url"], "https://api.example.com");
        let reactivate = &doc["paths"]["/admin/v1/books/{id}/_reactivate"]["post"];
        let params = reactivate["parameters"].as_array().expect("params");
        assert!(
            params
                .iter()
                .any(|p| p["in"] == "header" && p["name"] == "x-org"),
            "{params:?}"
        );
        // Other services do not read it.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if path.starts_with("/admin/") {
                continue;
            }
            for op in item.as_object().expect("item").values() {
                assert!(
                    !op["parameters"].to_string().contains("x-org"),
                    "{path}: {op}"
                );
            }
        }
        // The body of a `body: "*"` route leaves out what the path binds.
        let body = &reactivate["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["type"], "object", "{body}");
        assert!(body["properties"].get("id").is_none(), "{body}");
        // Title and tags cover every service.
        let title = doc["info"]["title"].as_str().expect("title");
        assert_eq!(title, "example.v1");
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        for service in ["example.v1.AdminService", "example.v1.LibraryService"] {
            assert!(tags.contains(&service), "{tags:?}");
            assert!(
                doc["info"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(service)),
                "{}",
                doc["info"]["description"]
            );
        }
        // Default: one relative server.
        assert_eq!(render(&table)["servers"][0]["url"], "/");
    }
}
