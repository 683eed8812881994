//! Writes the seed corpora under `fuzz/corpus/<target>/` from the served descriptors: every
//! route's template and a path for it, a query string for every body-less route, a JSON body
//! for every request message, and hand-picked frames and header values. Ignored: run it when
//! the protos change, then commit the result.
//!
//! ```text
//! cargo test -p switchyard-fuzz-targets --test seeds -- --ignored
//! ```

use std::path::{Path, PathBuf};

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use switchyard_fuzz_targets::{served_inputs, served_routes};
use switchyard_transcode::json::encode_message;
use switchyard_transcode::path_template::Segment;
use switchyard_transcode::{BodySpec, JsonOptions, PathTemplate};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    dir
}

fn write(target: &str, name: &str, data: &[u8]) {
    std::fs::write(corpus(target).join(name), data).expect("write a seed");
}

/// The selector byte the targets read as this HTTP method (`http_method` in the lib).
fn method_byte(method: &http::Method) -> u8 {
    match method.as_str() {
        "GET" => 0,
        "POST" => 1,
        "PUT" => 2,
        "DELETE" => 3,
        "PATCH" => 4,
        "HEAD" => 5,
        "OPTIONS" => 6,
        _ => 7,
    }
}

/// A request path the template matches, with `123` for every single-segment value.
fn sample_path(template: &PathTemplate) -> String {
    let mut path = String::new();
    for segment in template.segments() {
        path.push('/');
        path.push_str(match segment {
            Segment::Literal(lit) => lit,
            Segment::Wildcard => "123",
            Segment::DeepWildcard => "a/b",
        });
    }
    if let Some(verb) = template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    path
}

/// A query or path value for a scalar field, as text.
fn sample_text(field: &FieldDescriptor) -> Option<String> {
    Some(match field.kind() {
        Kind::Bool => "true".into(),
        Kind::String => "a b".into(),
        Kind::Bytes => "aGk=".into(),
        Kind::Double | Kind::Float => "1.5".into(),
        Kind::Enum(e) => e.values().last()?.name().to_owned(),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => "2024-01-02T03:04:05Z".into(),
            "google.protobuf.Duration" => "1.5s".into(),
            _ => return None,
        },
        _ => "7".into(),
    })
}

/// `name=value` pairs for the scalar fields of `desc` and of its singular message fields.
fn sample_query(desc: &MessageDescriptor, prefix: &str, depth: usize, out: &mut Vec<String>) {
    for field in desc.fields() {
        let name = format!("{prefix}{}", field.json_name());
        if let Some(text) = sample_text(&field) {
            let text = text.replace(' ', "+");
            out.push(format!("{name}={text}"));
            if field.is_list() {
                out.push(format!("{name}={text}"));
            }
        } else if let Kind::Message(m) = field.kind()
            && !field.is_list()
            && depth < 2
        {
            sample_query(&m, &format!("{name}."), depth + 1, out);
        }
    }
}

/// A value for every field of `desc` (one member per oneof), two levels deep.
fn sample_message(desc: &MessageDescriptor, depth: usize) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if field
            .containing_oneof()
            .is_some_and(|o| o.fields().next().map(|f| f.number()) != Some(field.number()))
        {
            continue;
        }
        let value = match field.kind() {
            Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
                let mut ts = DynamicMessage::new(m);
                let _ = ts.try_set_field_by_name("seconds", Value::I64(1_700_000_000));
                Value::Message(ts)
            }
            Kind::Message(m) if depth < 2 => Value::Message(sample_message(&m, depth + 1)),
            Kind::Message(_) => continue,
            Kind::Bool => Value::Bool(true),
            Kind::String => Value::String("sample".into()),
            Kind::Bytes => Value::Bytes(b"hi".to_vec().into()),
            Kind::Double => Value::F64(1.5),
            Kind::Float => Value::F32(1.5),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-7),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-7),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(7),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(7),
            Kind::Enum(e) => Value::EnumNumber(e.values().last().map_or(0, |v| v.number())),
        };
        let value = if field.is_list() {
            Value::List(vec![value])
        } else {
            value
        };
        let _ = msg.try_set_field(&field, value);
    }
    msg
}

fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand when the protos change"]
fn write_seed_corpora() {
    let routes = served_routes().routes();
    let opts = JsonOptions::default();
    for (i, route) in routes.iter().enumerate() {
        let template = route.template();
        let path = sample_path(template);
        write(
            "path_template",
            &format!("route-{i:03}"),
            format!("{template}\n{path}").as_bytes(),
        );
        let mut seed = vec![method_byte(route.http_method())];
        seed.extend_from_slice(path.as_bytes());
        write("route_match", &format!("route-{i:03}"), &seed);
        if matches!(route.body(), BodySpec::None) {
            let mut pairs = Vec::new();
            sample_query(&route.method().input(), "", 0, &mut pairs);
            seed.push(b'?');
            seed.extend_from_slice(pairs.join("&").as_bytes());
            write("query_binding", &format!("route-{i:03}"), &seed);
        }
    }
    for (template, path) in [
        (
            "/v1/{name=shelves/*/books/*}:publish",
            "/v1/shelves/1/books/2:publish",
        ),
        ("/v1/{name=**}", "/v1/a/b%2Fc"),
        ("/v1/{book.name=x/*}/y/**:v", "/v1/x/%41/y/z:v"),
        ("/%61/{a}", "/a/%E2%82%AC"),
    ] {
        let name = format!("grammar-{}", template.len());
        write(
            "path_template",
            &name,
            format!("{template}\n{path}").as_bytes(),
        );
    }
    for (i, desc) in served_inputs().iter().enumerate() {
        let selector = u8::try_from(i % 128).unwrap_or(0);
        let json = encode_message(&sample_message(desc, 0), &opts).expect("a sample renders");
        let mut seed = vec![selector];
        seed.extend_from_slice(&json);
        write("json_message", desc.full_name(), &seed);
        if i % 4 == 0 {
            let mut connect = vec![0, selector | 0x80];
            connect.extend_from_slice(&frame(0, &json));
            connect.extend_from_slice(&frame(2, b"{}"));
            write(
                "connect_envelope",
                &format!("json-{}", desc.full_name()),
                &connect,
            );
        }
    }
    let mut proto = vec![3, 0];
    proto.extend_from_slice(&frame(0, b"\x0a\x03abc"));
    proto.extend_from_slice(&frame(0, b""));
    write("connect_envelope", "proto-two", &proto);
    write(
        "connect_envelope",
        "compressed",
        &[[1, 0].as_slice(), &frame(1, b"x")].concat(),
    );
    write(
        "connect_envelope",
        "truncated",
        &[5, 0, 0, 0, 0, 0, 9, b'a'],
    );
    write("connect_envelope", "too-large", &[0, 0, 0, 0, 2, 0, 0]);
    for (name, selector, body) in [
        ("one", 1, frame(0, b"\x0a\x03abc")),
        ("empty", 0, frame(0, b"")),
        ("two", 1, [frame(0, b"a"), frame(0, b"b")].concat()),
        ("compressed", 1, frame(1, b"x")),
        ("trailers", 1, frame(0x80, b"grpc-status:0\r\n")),
        ("over-limit", 0, frame(0, &[0; 17])),
        ("text", 9, b"AAAAAAJoaQ==AAAA\r\nAAA=".to_vec()),
        ("short", 0, vec![0, 0, 0]),
    ] {
        write(
            "grpc_web_frame",
            name,
            &[[selector].as_slice(), &body].concat(),
        );
    }
    for value in [
        "1S",
        "100m",
        "99999999H",
        "5n",
        "7u",
        "3M",
        "0",
        "123",
        "1000000000",
        "-1",
        "1.5S",
        "123456789m",
        "",
    ] {
        let name = if value.is_empty() { "empty" } else { value };
        write("timeout_header", name, value.as_bytes());
    }
}
