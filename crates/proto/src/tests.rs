//! Checks the compiled descriptors against `testdata/published_api.tsv`, the wire contract of the
//! published ZITADEL API (field numbers, names, types, labels, JSON names, enum values, methods and
//! their `google.api.http` bindings). A row that differs, is missing from our protos, or a
//! declaration of ours that has no row, fails the test.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MethodDescriptor, Value};

use crate::descriptor_pool;

const PUBLISHED_API: &str = include_str!("../testdata/published_api.tsv");

/// One `field` row: number, name, type, label, json name.
type FieldRow = (u32, String, String, String, String);

/// One `method` row: verb, path, body, input type, output type.
type MethodRow = (String, String, String, String, String);

#[derive(Default)]
struct Contract {
    messages: BTreeMap<String, Vec<FieldRow>>,
    enums: BTreeMap<String, Vec<(i32, String)>>,
    services: BTreeMap<String, BTreeMap<String, MethodRow>>,
}

fn parse_contract(text: &str) -> Contract {
    let mut contract = Contract::default();
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let bad = || -> ! {
            panic!(
                "published_api.tsv line {}: malformed row {line:?}",
                index + 1
            )
        };
        match (cols[0], cols.len()) {
            ("message", 2) => {
                contract.messages.entry(cols[1].to_owned()).or_default();
            }
            ("field", 7) => {
                let number = cols[2].parse().unwrap_or_else(|_| bad());
                let row = (number, s(cols[3]), s(cols[4]), s(cols[5]), s(cols[6]));
                match contract.messages.get_mut(cols[1]) {
                    Some(fields) => fields.push(row),
                    None => bad(),
                }
            }
            ("enum", 2) => {
                contract.enums.entry(cols[1].to_owned()).or_default();
            }
            ("value", 4) => {
                let number: i32 = cols[2].parse().unwrap_or_else(|_| bad());
                match contract.enums.get_mut(cols[1]) {
                    Some(values) => values.push((number, s(cols[3]))),
                    None => bad(),
                }
            }
            ("method", 8) => {
                let row = (s(cols[3]), s(cols[4]), s(cols[5]), s(cols[6]), s(cols[7]));
                contract
                    .services
                    .entry(cols[1].to_owned())
                    .or_default()
                    .insert(cols[2].to_owned(), row);
            }
            _ => bad(),
        }
    }
    for fields in contract.messages.values_mut() {
        fields.sort();
    }
    for values in contract.enums.values_mut() {
        values.sort();
    }
    contract
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// The type column: the scalar's proto name, or the full name of the message or enum.
fn type_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Double => s("double"),
        Kind::Float => s("float"),
        Kind::Int32 => s("int32"),
        Kind::Int64 => s("int64"),
        Kind::Uint32 => s("uint32"),
        Kind::Uint64 => s("uint64"),
        Kind::Sint32 => s("sint32"),
        Kind::Sint64 => s("sint64"),
        Kind::Fixed32 => s("fixed32"),
        Kind::Fixed64 => s("fixed64"),
        Kind::Sfixed32 => s("sfixed32"),
        Kind::Sfixed64 => s("sfixed64"),
        Kind::Bool => s("bool"),
        Kind::String => s("string"),
        Kind::Bytes => s("bytes"),
        Kind::Message(message) => s(message.full_name()),
        Kind::Enum(enum_) => s(enum_.full_name()),
    }
}

/// The label column: proto3 `optional` sits in a synthetic oneof, so it is checked first.
fn label(field: &FieldDescriptor) -> String {
    if field.field_descriptor_proto().proto3_optional() {
        s("optional")
    } else if field.cardinality() == Cardinality::Repeated {
        s("repeated")
    } else if let Some(oneof) = field.containing_oneof() {
        format!("oneof {}", oneof.name())
    } else {
        s("")
    }
}

/// The method row of our descriptor, read from its `google.api.http` option.
fn method_row(pool: &DescriptorPool, method: &MethodDescriptor) -> Result<MethodRow, String> {
    let http = pool
        .get_extension_by_name("google.api.http")
        .ok_or("the pool has no google.api.http extension")?;
    let options = method.options();
    if !options.has_extension(&http) {
        return Err(format!(
            "{} has no google.api.http option",
            method.full_name()
        ));
    }
    let rule = options.get_extension(&http);
    let Value::Message(rule) = rule.as_ref() else {
        return Err(format!(
            "{}: google.api.http is not a message",
            method.full_name()
        ));
    };
    let text = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let (verb, path) = match ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .find(|verb| rule.has_field_by_name(verb))
    {
        Some(verb) => (s(verb), text(verb)),
        None => {
            return Err(format!(
                "{}: HttpRule has no standard verb",
                method.full_name()
            ));
        }
    };
    let extra = rule
        .get_field_by_name("additional_bindings")
        .and_then(|value| value.as_list().map(<[Value]>::len))
        .unwrap_or_default();
    if extra != 0 || !text("response_body").is_empty() {
        return Err(format!(
            "{}: unexpected additional_bindings or response_body",
            method.full_name()
        ));
    }
    Ok((
        verb,
        path,
        text("body"),
        s(method.input().full_name()),
        s(method.output().full_name()),
    ))
}

#[test]
fn descriptors_match_published_api() {
    let pool = descriptor_pool();
    let contract = parse_contract(PUBLISHED_API);
    let mut errors = Vec::new();

    for (name, want) in &contract.messages {
        let Some(message) = pool.get_message_by_name(name) else {
            errors.push(format!("message {name} is missing"));
            continue;
        };
        let mut got: Vec<FieldRow> = message
            .fields()
            .map(|field| {
                (
                    field.number(),
                    s(field.name()),
                    type_name(&field),
                    label(&field),
                    s(field.json_name()),
                )
            })
            .collect();
        got.sort();
        if &got != want {
            errors.push(format!(
                "message {name}:\n  ours      {got:?}\n  published {want:?}"
            ));
        }
    }

    for (name, want) in &contract.enums {
        let Some(enum_) = pool.get_enum_by_name(name) else {
            errors.push(format!("enum {name} is missing"));
            continue;
        };
        let mut got: Vec<(i32, String)> = enum_
            .values()
            .map(|value| (value.number(), s(value.name())))
            .collect();
        got.sort();
        if &got != want {
            errors.push(format!(
                "enum {name}:\n  ours      {got:?}\n  published {want:?}"
            ));
        }
    }

    for (name, want) in &contract.services {
        let Some(service) = pool.get_service_by_name(name) else {
            errors.push(format!("service {name} is missing"));
            continue;
        };
        let ours: BTreeSet<String> = service.methods().map(|m| s(m.name())).collect();
        let published: BTreeSet<String> = want.keys().cloned().collect();
        if ours != published {
            errors.push(format!(
                "service {name}: methods {ours:?}, want {published:?}"
            ));
        }
        for method in service.methods() {
            let Some(want) = want.get(method.name()) else {
                continue;
            };
            match method_row(pool, &method) {
                Ok(got) if &got == want => {}
                Ok(got) => errors.push(format!(
                    "method {}:\n  ours      {got:?}\n  published {want:?}",
                    method.full_name()
                )),
                Err(error) => errors.push(error),
            }
        }
    }

    // Everything we declare outside the well-known types must be vetted by a row.
    let ours = |full_name: &str| !full_name.starts_with("google.protobuf.");
    for message in pool.all_messages().filter(|m| ours(m.full_name())) {
        if !contract.messages.contains_key(message.full_name()) {
            errors.push(format!(
                "message {} has no row in the contract",
                message.full_name()
            ));
        }
    }
    for enum_ in pool.all_enums().filter(|e| ours(e.full_name())) {
        if !contract.enums.contains_key(enum_.full_name()) {
            errors.push(format!(
                "enum {} has no row in the contract",
                enum_.full_name()
            ));
        }
    }
    for service in pool.services() {
        if !contract.services.contains_key(service.full_name()) {
            errors.push(format!(
                "service {} has no row in the contract",
                service.full_name()
            ));
        }
    }

    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn http_extension_has_published_number() {
    let http = descriptor_pool()
        .get_extension_by_name("google.api.http")
        .expect("google.api.http is declared");
    assert_eq!(http.number(), 72_295_728);
    assert_eq!(
        http.containing_message().full_name(),
        "google.protobuf.MethodOptions"
    );
    assert_eq!(
        http.kind()
            .as_message()
            .map(|m| m.full_name().to_owned())
            .as_deref(),
        Some("google.api.HttpRule")
    );
}

#[test]
fn contract_rejects_a_changed_row() {
    // Guards the checker itself: a contract with one number changed must not match our pool.
    let changed = PUBLISHED_API.replace(
        "field\tzitadel.user.v2.User\t8\tdetails",
        "field\tzitadel.user.v2.User\t9\tdetails",
    );
    assert_ne!(changed, PUBLISHED_API, "the row to change exists");
    let contract = parse_contract(&changed);
    let user = descriptor_pool()
        .get_message_by_name("zitadel.user.v2.User")
        .expect("zitadel.user.v2.User is declared");
    let got: BTreeSet<u32> = user.fields().map(|f| f.number()).collect();
    let want: BTreeSet<u32> = contract.messages["zitadel.user.v2.User"]
        .iter()
        .map(|f| f.0)
        .collect();
    assert_ne!(got, want);
}
