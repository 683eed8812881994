//! Property test: every message the ZITADEL API sends or receives, filled with arbitrary
//! values, goes protobuf → JSON (our writer, [`encode_message`]) → protobuf (our strict
//! reader, [`parse_message`]) unchanged, under every [`JsonOptions`] a service can set; and
//! the writer's bytes are prost-reflect's own, as `json/ser.rs` promises.
//!
//! The messages are generated from the descriptors, not from typed structs, so a new field
//! or message in `proto/` is covered without touching this file.

use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value,
};
use switchyard_transcode::JsonOptions;
use switchyard_transcode::json::{encode_message, parse_message};

/// Nested messages deeper than this are left unset (some ZITADEL queries are recursive).
const MAX_DEPTH: usize = 3;

/// The request and response message of every method of every served service.
fn served_messages() -> Vec<MessageDescriptor> {
    let pool = switchyard_proto::descriptor_pool();
    let mut out: Vec<MessageDescriptor> = pool
        .services()
        .flat_map(|s| {
            s.methods()
                .flat_map(|m| [m.input(), m.output()])
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    out.dedup_by(|a, b| a.full_name() == b.full_name());
    out
}

/// A value of a well-known type within the range the JSON mapping allows.
fn well_known(desc: &MessageDescriptor) -> Option<BoxedStrategy<Value>> {
    let desc = desc.clone();
    let fields = |seconds: i64, nanos: i32, d: &MessageDescriptor| {
        let mut msg = DynamicMessage::new(d.clone());
        msg.set_field_by_name("seconds", Value::I64(seconds));
        msg.set_field_by_name("nanos", Value::I32(nanos));
        Value::Message(msg)
    };
    match desc.full_name() {
        // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z
        "google.protobuf.Timestamp" => Some(
            (-62_135_596_800i64..=253_402_300_799, 0i32..1_000_000_000)
                .prop_map(move |(s, n)| fields(s, n, &desc))
                .boxed(),
        ),
        // ±10,000 years; the nanos carry the seconds' sign.
        "google.protobuf.Duration" => Some(
            (-315_576_000_000i64..=315_576_000_000, 0i32..1_000_000_000)
                .prop_map(move |(s, n)| {
                    let n = if s < 0 { -n } else { n };
                    fields(s, n, &desc)
                })
                .boxed(),
        ),
        _ => None,
    }
}

/// A value of one element of `field` (its kind, not its cardinality).
fn element(field: &FieldDescriptor, depth: usize) -> Option<BoxedStrategy<Value>> {
    Some(match field.kind() {
        Kind::Double => prop_oneof![
            any::<f64>().prop_filter("not NaN", |v| !v.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
        .prop_map(Value::F64)
        .boxed(),
        Kind::Float => any::<f32>()
            .prop_filter("not NaN", |v| !v.is_nan())
            .prop_map(Value::F32)
            .boxed(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => any::<i32>().prop_map(Value::I32).boxed(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => any::<i64>().prop_map(Value::I64).boxed(),
        Kind::Uint32 | Kind::Fixed32 => any::<u32>().prop_map(Value::U32).boxed(),
        Kind::Uint64 | Kind::Fixed64 => any::<u64>().prop_map(Value::U64).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::String => any::<String>().prop_map(Value::String).boxed(),
        Kind::Bytes => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| Value::Bytes(b.into()))
            .boxed(),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            // Mostly named values; now and then a number the enum does not name.
            prop_oneof![
                4 => proptest::sample::select(known),
                1 => any::<i32>(),
            ]
            .prop_map(Value::EnumNumber)
            .boxed()
        }
        Kind::Message(m) => match well_known(&m) {
            Some(s) => s,
            None if depth < MAX_DEPTH => message(&m, depth + 1).prop_map(Value::Message).boxed(),
            None => return None,
        },
    })
}

/// Any value of `field`, or none.
fn field_value(field: &FieldDescriptor, depth: usize) -> BoxedStrategy<Option<Value>> {
    let Some(element) = element(field, depth) else {
        return Just(None).boxed();
    };
    if field.is_list() {
        proptest::option::of(proptest::collection::vec(element, 0..3).prop_map(Value::List)).boxed()
    } else {
        proptest::option::of(element).boxed()
    }
}

/// A message of type `desc` with arbitrary fields set; of a oneof, the last one drawn wins.
fn message(desc: &MessageDescriptor, depth: usize) -> BoxedStrategy<DynamicMessage> {
    let fields: Vec<FieldDescriptor> = desc.fields().collect();
    let values: Vec<BoxedStrategy<Option<Value>>> =
        fields.iter().map(|f| field_value(f, depth)).collect();
    let desc = desc.clone();
    values
        .prop_map(move |values| {
            let mut msg = DynamicMessage::new(desc.clone());
            for (field, value) in fields.iter().zip(values) {
                if let Some(value) = value {
                    msg.set_field(field, value);
                }
            }
            msg
        })
        .boxed()
}

fn options() -> impl Strategy<Value = JsonOptions> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(unpopulated, proto_names, numbers)| {
        JsonOptions {
            emit_unpopulated: unpopulated,
            use_proto_field_names: proto_names,
            use_enum_numbers: numbers,
            // Strict: what we write must not need the reader's leniency.
            ignore_unknown_fields: false,
            ..JsonOptions::default()
        }
    })
}

fn served_message() -> impl Strategy<Value = DynamicMessage> {
    proptest::sample::select(served_messages()).prop_flat_map(|desc| message(&desc, 0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trips_every_served_message(msg in served_message(), opts in options()) {
        let desc = msg.descriptor();
        let json = encode_message(&msg, &opts).expect("a valid message renders");
        let text = String::from_utf8_lossy(&json).into_owned();
        let back = parse_message(desc.clone(), &json, &opts)
            .map_err(|e| TestCaseError::fail(format!("{text} does not read back: {e}")))?;
        prop_assert_eq!(
            back.encode_to_vec(),
            msg.encode_to_vec(),
            "{} changed through {}",
            desc.full_name(),
            text
        );
    }

    #[test]
    fn json_writer_is_prost_reflects(msg in served_message(), opts in options()) {
        let ours = encode_message(&msg, &opts).expect("a valid message renders");
        let mut theirs = serde_json::Serializer::new(Vec::new());
        msg.serialize_with_options(&mut theirs, &opts.serialize_options())
            .expect("prost-reflect renders it too");
        let theirs = theirs.into_inner();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }
}
