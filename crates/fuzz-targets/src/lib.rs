//! Switchyard's fuzz targets as plain functions of the input bytes, one per parser that reads
//! input off the network: [`path_template`], [`route_match`], [`query_binding`],
//! [`json_message`], [`grpc_web_frame`], [`connect_envelope`] and [`timeout_header`].
//!
//! Each one drives the real code (the transcode crate's public API, the gateway's parsers
//! through its hidden `fuzzing` module) with the ZITADEL descriptors and route table the
//! server serves, and panics only when a property the code promises is broken: a parser that
//! panics, a decoded message that does not render and read back the same, a frame reader
//! whose answer depends on how the body was chunked. Errors for bad input are the expected
//! outcome, not a failure.
//!
//! libFuzzer runs them from `fuzz/` (a crate outside the workspace, see `fuzz/README.md`); the
//! test `tests/replay.rs` runs every committed corpus file and crash regression through them
//! on the stable toolchain, as part of the normal test command.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use switchyard_gateway::fuzzing;
use switchyard_transcode::json::{encode_message, parse_message};
use switchyard_transcode::path_template::Segment;
use switchyard_transcode::{
    JsonOptions, PathTemplate, RouteError, RouteTable, RouteTableBuilder, decode_request,
};

/// A fuzz target: the input bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("path_template", path_template),
    ("route_match", route_match),
    ("query_binding", query_binding),
    ("json_message", json_message),
    ("grpc_web_frame", grpc_web_frame),
    ("connect_envelope", connect_envelope),
    ("timeout_header", timeout_header),
];

/// What the server serves: the ZITADEL descriptors, the route table with the default REST
/// prefix, and every message a client sends (the input of every method), sorted by name.
struct Served {
    table: RouteTable,
    inputs: Vec<MessageDescriptor>,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let pool: DescriptorPool = switchyard_proto::descriptor_pool().clone();
        // The default `rest_prefixes` of the server's configuration.
        let table = RouteTableBuilder::new(pool.clone())
            .service_prefix("zitadel.management.v1.ManagementService", "/management/v1")
            .build()
            .expect("the ZITADEL route table builds");
        let mut inputs: Vec<MessageDescriptor> = pool
            .services()
            .flat_map(|s| s.methods().map(|m| m.input()).collect::<Vec<_>>())
            .collect();
        inputs.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        inputs.dedup_by(|a, b| a.full_name() == b.full_name());
        Served { table, inputs }
    })
}

/// The request message types a client can send, sorted by full name (the seed generator and
/// the targets pick them by index).
pub fn served_inputs() -> Vec<MessageDescriptor> {
    served().inputs.clone()
}

/// The served route table.
pub fn served_routes() -> &'static RouteTable {
    &served().table
}

/// The two JSON settings a service can have: the default (unknown fields and query
/// parameters ignored, as ZITADEL's gateway does) and strict.
fn json_options(strict: bool) -> JsonOptions {
    JsonOptions {
        ignore_unknown_fields: !strict,
        ignore_unknown_query_parameters: !strict,
        ..JsonOptions::default()
    }
}

/// The HTTP method a selector byte stands for.
fn http_method(selector: u8) -> http::Method {
    match selector % 8 {
        0 => http::Method::GET,
        1 => http::Method::POST,
        2 => http::Method::PUT,
        3 => http::Method::DELETE,
        4 => http::Method::PATCH,
        5 => http::Method::HEAD,
        6 => http::Method::OPTIONS,
        _ => http::Method::from_bytes(b"PURGE").expect("a token is a method"),
    }
}

/// `TEMPLATE` or `TEMPLATE\nPATH`: parses the template; a template that parses keeps its
/// text, covers its segments with its variables, matches a path built from it, and matches
/// `PATH` (if given) without panicking.
pub fn path_template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, path) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(template) = PathTemplate::parse(source) else {
        return;
    };
    assert_eq!(
        template.to_string(),
        source,
        "Display gives the source back"
    );
    assert_eq!(
        PathTemplate::parse(&template.to_string()).as_ref(),
        Ok(&template),
        "the formatted template parses to the same template"
    );
    let segments = template.segments();
    let deep = segments
        .iter()
        .filter(|s| **s == Segment::DeepWildcard)
        .count();
    assert!(deep <= 1, "at most one '**'");
    for var in template.variables() {
        assert!(
            var.start < var.end && var.end <= segments.len(),
            "variable {var:?} covers segments"
        );
    }
    if !source.contains('%') {
        // Without escapes, literals are the template's own text, so a path made of them
        // and of one value per wildcard matches and binds every variable.
        let mut path = String::new();
        for segment in segments {
            path.push('/');
            path.push_str(match segment {
                Segment::Literal(lit) => lit,
                Segment::Wildcard => "x",
                Segment::DeepWildcard => "d1/d2",
            });
        }
        if let Some(verb) = template.verb() {
            path.push(':');
            path.push_str(verb);
        }
        let bindings = template.match_path(&path);
        assert!(
            bindings.as_ref().map(Vec::len) == Some(template.variables().len()),
            "{source} matches {path}: {bindings:?}"
        );
    }
    if let Some(bindings) = template.match_path(path) {
        assert_eq!(bindings.len(), template.variables().len());
    }
}

/// `M PATH[?QUERY]` where `M` is one byte selecting the HTTP method: finds the route in the
/// served table. A match is one whose template matches the path, with the method asked for
/// (or GET for HEAD); a refusal for the method names other methods.
pub fn route_match(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let method = http_method(selector);
    match served().table.find(&method, path) {
        Ok(found) => {
            let route = found.route();
            assert!(
                *route.http_method() == method
                    || (method == http::Method::HEAD && *route.http_method() == http::Method::GET),
                "{method} {path} found a {} route",
                route.http_method()
            );
            let bare = path.split_once('?').map_or(path, |(p, _)| p);
            assert_eq!(
                route.template().match_path(bare).as_deref(),
                Some(found.bindings()),
                "the route's template matches {bare}"
            );
        }
        Err(RouteError::MethodNotAllowed { allowed }) => {
            assert!(!allowed.is_empty() && !allowed.contains(&method));
        }
        Err(RouteError::NotFound | RouteError::BadPath) => {}
    }
}

/// `M PATH?QUERY` (`M` as in [`route_match`], its bit 7 for strict query parameters): finds
/// the route and builds the request message from the path and the query string, as a REST
/// call without a body. A message that builds renders as JSON.
pub fn query_binding(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(uri) = std::str::from_utf8(rest) else {
        return;
    };
    let (path, query) = match uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (uri, None),
    };
    let Ok(found) = served().table.find(&http_method(selector), path) else {
        return;
    };
    let opts = json_options(selector & 0x80 != 0);
    if let Ok(message) = decode_request(&found, query, b"", &opts) {
        encode_message(&message, &opts).expect("a bound request renders as JSON");
    }
}

/// `S JSON` where `S` selects a served request message (bits 0-6) and strict JSON (bit 7):
/// decodes the body as the REST and Connect JSON readers do. A message that decodes renders
/// as JSON (byte for byte prost-reflect's) that decodes to the same message, whose protobuf
/// encoding decodes too.
pub fn json_message(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let inputs = &served().inputs;
    let Some(desc) = inputs.get(usize::from(selector & 0x7f) % inputs.len()) else {
        return;
    };
    let opts = json_options(selector & 0x80 != 0);
    let Ok(message) = parse_message(desc.clone(), body, &opts) else {
        return;
    };
    let json = encode_message(&message, &opts).expect("a decoded message renders as JSON");
    let mut reference = serde_json::Serializer::new(Vec::new());
    message
        .serialize_with_options(&mut reference, &opts.serialize_options())
        .expect("prost-reflect renders it too");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&reference.into_inner()),
        "our JSON writer writes what prost-reflect writes"
    );
    let again = parse_message(desc.clone(), &json, &opts).unwrap_or_else(|e| {
        panic!(
            "{} rendered as {} does not read back: {e}",
            desc.full_name(),
            String::from_utf8_lossy(&json)
        )
    });
    let json_again = encode_message(&again, &opts).expect("renders again");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&json_again),
        "{} reads back the same",
        desc.full_name()
    );
    DynamicMessage::decode(desc.clone(), message.encode_to_vec().as_slice())
        .expect("the protobuf encoding decodes");
}

/// `F BODY` where `F` selects the message limit (bit 0: 16 bytes, else 4 MiB): reads `BODY`
/// as a unary gRPC-Web body, binary, and as text (its base64, cut into padded pieces at a
/// point `F` chooses). A frame reads as its payload; text reads exactly as its bytes do.
pub fn grpc_web_frame(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let max = if selector & 1 == 0 {
        16
    } else {
        switchyard_gateway::DEFAULT_MAX_MESSAGE_BYTES
    };
    let binary = fuzzing::grpc_web_unary(body, false, max);
    if let Ok(message) = &binary {
        assert!(message.len() <= max);
        assert_eq!(
            body.len(),
            message.len() + 5,
            "one frame: header and payload"
        );
        assert_eq!(body.get(5..), Some(&message[..]));
    }
    // grpc-web-text: a client may send its body as several base64 pieces, each padded.
    let cut = usize::from(selector >> 1) % (body.len() + 1);
    let (head, tail) = body.split_at(cut);
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = format!("{}\r\n{}", b64.encode(head), b64.encode(tail));
    let from_text = fuzzing::grpc_web_unary(text.as_bytes(), true, max);
    match (&binary, &from_text) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{a:?} / {b:?}"),
        _ => panic!("binary {binary:?}, text {from_text:?}"),
    }
    // Whatever the text is, it is an answer, not a panic.
    let _ = fuzzing::grpc_web_unary(body, true, max);
}

/// `C S BODY`: reads `BODY` as a streamed request body of envelopes (gRPC and gRPC-Web
/// streams, Connect envelopes), arriving in chunks of `C % 17` bytes (0: one chunk), then
/// converts each message as Connect does to the served message `S` selects (bit 7: JSON).
/// The reader finishes, and what it reads does not depend on the chunking.
pub fn connect_envelope(data: &[u8]) {
    let [chunk, selector, body @ ..] = data else {
        return;
    };
    let max = 1 << 16;
    let whole = Bytes::copy_from_slice(body);
    let chunks: Vec<Bytes> = match usize::from(*chunk % 17) {
        0 => vec![whole.clone()],
        n => body.chunks(n).map(Bytes::copy_from_slice).collect(),
    };
    let chunked = fuzzing::envelopes(chunks, max).expect("the envelope reader finishes");
    let at_once = fuzzing::envelopes(vec![whole], max).expect("the envelope reader finishes");
    assert_eq!(
        chunked.len(),
        at_once.len(),
        "as many items, however chunked"
    );
    for (a, b) in chunked.iter().zip(&at_once) {
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!((a.code(), a.message()), (b.code(), b.message())),
            _ => panic!("chunked {a:?}, at once {b:?}"),
        }
    }
    let inputs = &served().inputs;
    let Some(desc) = inputs.get(usize::from(selector & 0x7f) % inputs.len()) else {
        return;
    };
    let json = selector & 0x80 != 0;
    for (flag, message) in chunked.into_iter().flatten() {
        if flag != 0 {
            continue;
        }
        if let Ok(proto) = fuzzing::connect_message(desc, json, message, &json_options(false)) {
            DynamicMessage::decode(desc.clone(), proto).expect("a converted message decodes");
        }
    }
}

/// A header value: parsed as `grpc-timeout` and as `connect-timeout-ms`. A value that parses
/// is what the spec says: 1 to 8 digits and a unit, or 1 to 10 digits of milliseconds.
pub fn timeout_header(data: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    if let Ok(timeout) = fuzzing::grpc_timeout(&value) {
        let (digits, unit) = data.split_at(data.len() - 1);
        assert!((1..=8).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit));
        let n: u64 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .expect("digits");
        let want = match unit {
            b"H" => Duration::from_secs(n * 3600),
            b"M" => Duration::from_secs(n * 60),
            b"S" => Duration::from_secs(n),
            b"m" => Duration::from_millis(n),
            b"u" => Duration::from_micros(n),
            b"n" => Duration::from_nanos(n),
            _ => panic!("grpc-timeout {value:?} parsed with unit {unit:?}"),
        };
        assert_eq!(timeout, want);
    }
    if let Ok(timeout) = fuzzing::connect_timeout(&value) {
        assert!((1..=10).contains(&data.len()) && data.iter().all(u8::is_ascii_digit));
        let n: u64 = std::str::from_utf8(data)
            .ok()
            .and_then(|d| d.parse().ok())
            .expect("digits");
        assert_eq!(timeout, Duration::from_millis(n));
    }
}
