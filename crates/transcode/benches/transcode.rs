//! Criterion benchmarks of the hot paths: route lookup as the table grows (10, 1,000 and
//! 10,000 routes; the segment trie should keep it nearly flat), and JSON ⇄ protobuf for a
//! small and a 64 KiB message. Results go in BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use switchyard_transcode::json::{encode_message, parse_message};
use switchyard_transcode::{JsonOptions, RouteTableBuilder};

/// A generated proto with `n` methods, each bound to `/v1/resources{i}/{id}/items/{item}`.
fn pool_with_routes(n: usize) -> DescriptorPool {
    let mut proto = String::from(
        "syntax = \"proto3\";\npackage bench.v1;\nimport \"google/api/annotations.proto\";\n\
         message Req { string id = 1; string item = 2; string name = 3; int64 count = 4; }\n\
         service Bench {\n",
    );
    for i in 0..n {
        proto.push_str(&format!(
            "  rpc M{i}(Req) returns (Req) {{ option (google.api.http) = {{ get: \"/v1/resources{i}/{{id}}/items/{{item}}\" }}; }}\n"
        ));
    }
    proto.push_str("}\n");
    let dir = tempfile_dir();
    std::fs::write(dir.join("bench.proto"), proto).unwrap();
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut compiler =
        protox::Compiler::new([dir.as_path(), std::path::Path::new(testdata)]).unwrap();
    compiler.include_imports(true);
    compiler.open_file("bench.proto").unwrap();
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).unwrap()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn route_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10usize, 1_000, 10_000] {
        let table = RouteTableBuilder::new(pool_with_routes(n)).build().unwrap();
        // The last-declared route: a linear scan would have to pass every other one.
        let path = format!("/v1/resources{}/abc/items/def", n - 1);
        group.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| table.find(&http::Method::GET, black_box(path)).unwrap());
        });
    }
    group.finish();
}

fn json_codec(c: &mut Criterion) {
    let pool = pool_with_routes(1);
    let desc = pool.get_message_by_name("bench.v1.Req").unwrap();
    let opts = JsonOptions::default();
    let small = br#"{"id":"abc","item":"def","name":"a small message","count":"42"}"#.to_vec();
    let big_name = "x".repeat(64 * 1024);
    let big =
        format!(r#"{{"id":"abc","item":"def","name":"{big_name}","count":"42"}}"#).into_bytes();
    let mut group = c.benchmark_group("json_to_proto");
    for (label, body) in [("small", &small), ("64KiB", &big)] {
        group.bench_with_input(BenchmarkId::from_parameter(label), body, |b, body| {
            b.iter(|| {
                parse_message(desc.clone(), black_box(body), &opts)
                    .unwrap()
                    .encode_to_vec()
            });
        });
    }
    group.finish();
    let mut group = c.benchmark_group("proto_to_json");
    for (label, body) in [("small", &small), ("64KiB", &big)] {
        let bytes = parse_message(desc.clone(), body, &opts)
            .unwrap()
            .encode_to_vec();
        group.bench_with_input(BenchmarkId::from_parameter(label), &bytes, |b, bytes| {
            b.iter(|| {
                let msg =
                    DynamicMessage::decode(desc.clone(), black_box(bytes.as_slice())).unwrap();
                encode_message(&msg, &opts).unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, route_lookup, json_codec);
criterion_main!(benches);
