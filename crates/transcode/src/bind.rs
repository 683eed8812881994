//! Building the request message of a REST call: body, path variables and
//! query parameters → one [`DynamicMessage`].
//!
//! This module owns the `HttpRule` binding rules (`google/api/http.proto`,
//! "HTTP rule"): the body fills the whole message (`body: "*"`) or one field;
//! path variables set (possibly nested) fields from strings; remaining fields
//! may come from the query string. JSON itself is [`crate::json`]'s; matching
//! the path is [`crate::route_table`]'s.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::error::TranscodeError;
use crate::json::{self, JsonOptions};
use crate::path_template::percent_decode;
use crate::route_table::{BodySpec, RouteMatch};

/// Builds the request message for a matched REST route.
///
/// Order: the body first, then path variables (which win over the body), then
/// query parameters for fields bound by neither. With `body: "*"` every field
/// is the body's, so the query string is not read at all.
///
/// # Errors
///
/// [`TranscodeError`] (all `InvalidArgument`): malformed JSON (with line and
/// column), a path value or query value that does not convert to its field's
/// type, an unknown query parameter, a non-repeated field given twice.
pub fn decode_request(
    route_match: &RouteMatch,
    query: Option<&str>,
    body: &[u8],
    opts: &JsonOptions,
) -> Result<DynamicMessage, TranscodeError> {
    decode_http_request(route_match, query, None, body, opts)
}

/// [`decode_request`] with the request's `content-type`, which a
/// `google.api.HttpBody` body keeps: such a body (the whole request, or the
/// `body` field) is taken as raw bytes rather than JSON.
///
/// # Errors
///
/// As [`decode_request`].
pub fn decode_http_request(
    route_match: &RouteMatch,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    opts: &JsonOptions,
) -> Result<DynamicMessage, TranscodeError> {
    let route = route_match.route();
    let input = route.method().input();
    let mut msg = match route.body() {
        BodySpec::Whole if is_http_body(&input) => http_body(input.clone(), content_type, body),
        BodySpec::Whole => json::parse_message(input.clone(), body, opts)?,
        BodySpec::Field(field) => {
            let mut msg = DynamicMessage::new(input.clone());
            let raw = match field.kind() {
                Kind::Message(m) if is_http_body(&m) && !field.is_list() => {
                    Some(Value::Message(http_body(m, content_type, body)))
                }
                _ => None,
            };
            let value = match raw {
                Some(v) => Some(v),
                None => json::parse_field(&input, field, body, opts)?,
            };
            if let Some(value) = value {
                msg.try_set_field(field, value)
                    .map_err(|e| TranscodeError::InvalidJson(serde::de::Error::custom(e)))?;
            }
            msg
        }
        BodySpec::None => DynamicMessage::new(input.clone()),
    };

    let mut bound: Vec<Vec<FieldDescriptor>> = Vec::new();
    for binding in route_match.bindings() {
        let invalid = |reason: String| TranscodeError::InvalidPathValue {
            field: binding.field_path.clone(),
            reason,
        };
        let path = resolve_field_path(&input, &binding.field_path).map_err(invalid)?;
        set_value(&mut msg, &path, &binding.value, false).map_err(invalid)?;
        bound.push(path);
    }

    if let (Some(query), false) = (query, matches!(route.body(), BodySpec::Whole)) {
        let body_field = match route.body() {
            BodySpec::Field(f) => Some(f.clone()),
            _ => None,
        };
        apply_query(&mut msg, &input, query, opts, |path| {
            // Fields filled from the body or the path are not taken again.
            body_field.as_ref().is_some_and(|b| path.first() == Some(b))
                || bound
                    .iter()
                    .any(|b| path.starts_with(b) || b.starts_with(path))
        })?;
    }
    Ok(msg)
}

fn apply_query(
    msg: &mut DynamicMessage,
    input: &MessageDescriptor,
    query: &str,
    opts: &JsonOptions,
    is_bound: impl Fn(&[FieldDescriptor]) -> bool,
) -> Result<(), TranscodeError> {
    let mut seen = HashSet::new();
    for (name, value) in parse_query(query)? {
        let path = match resolve_field_path(input, &name) {
            Ok(path) => path,
            _ if opts.ignore_unknown_query_parameters => continue,
            _ => return Err(TranscodeError::UnknownQueryParameter(name)),
        };
        if is_bound(&path) {
            continue;
        }
        let invalid = |reason: String| TranscodeError::InvalidQueryValue {
            name: name.clone(),
            reason,
        };
        let leaf_is_list = path.last().is_some_and(FieldDescriptor::is_list);
        let key: Vec<u32> = path.iter().map(FieldDescriptor::number).collect();
        if !leaf_is_list && !seen.insert(key) {
            return Err(invalid(
                "given more than once for a non-repeated field".into(),
            ));
        }
        set_value(msg, &path, &value, true).map_err(invalid)?;
    }
    Ok(())
}

/// Whether `desc` is `google.api.HttpBody`: raw bytes with a content type.
pub fn is_http_body(desc: &MessageDescriptor) -> bool {
    desc.full_name() == "google.api.HttpBody"
}

/// An `HttpBody` holding `body` and its content type.
fn http_body(desc: MessageDescriptor, content_type: Option<&str>, body: &[u8]) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc);
    if let Some(ct) = content_type {
        // Field 1: content_type; field 2: data (google/api/httpbody.proto).
        let _ = msg.try_set_field_by_number(1, Value::String(ct.to_owned()));
    }
    let _ = msg.try_set_field_by_number(2, Value::Bytes(bytes::Bytes::copy_from_slice(body)));
    msg
}

/// Splits `a=1&b=x%20y&c` into decoded pairs (`+` is a space, as in HTML
/// forms). Empty pairs are skipped; a key without `=` has an empty value.
///
/// # Errors
///
/// [`TranscodeError::InvalidQuery`] for a bad escape or non-UTF-8 text.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, TranscodeError> {
    let decode = |s: &str| {
        percent_decode(&s.replace('+', " "), false)
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| TranscodeError::InvalidQuery(format!("cannot decode '{s}'")))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Resolves a dotted field path (`filter.min_year` or `filter.minYear`)
/// against `desc`. Every part but the last must be a singular message field.
///
/// # Errors
///
/// A human-readable reason when a part names no field or cannot be descended
/// into.
pub fn resolve_field_path(
    desc: &MessageDescriptor,
    path: &str,
) -> Result<Vec<FieldDescriptor>, String> {
    let mut out = Vec::new();
    let mut current = desc.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| format!("no field '{part}' in {}", current.full_name()))?;
        if parts.peek().is_some() {
            match field.kind() {
                Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
                _ => return Err(format!("field '{part}' is not a singular message")),
            }
        }
        out.push(field);
    }
    Ok(out)
}

/// Whether a path variable or query parameter can set this field from a string.
pub(crate) fn is_bindable_leaf(field: &FieldDescriptor) -> bool {
    match field.kind() {
        _ if field.is_map() => false,
        Kind::Message(m) => is_string_convertible_message(&m),
        _ => true,
    }
}

fn is_string_convertible_message(desc: &MessageDescriptor) -> bool {
    matches!(
        desc.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

fn set_value(
    msg: &mut DynamicMessage,
    path: &[FieldDescriptor],
    raw: &str,
    append: bool,
) -> Result<(), String> {
    let Some((leaf, parents)) = path.split_last() else {
        return Err("empty field path".into());
    };
    let mut current = msg;
    for field in parents {
        current = current
            .get_field_mut(field)
            .as_message_mut()
            .ok_or_else(|| format!("field '{}' is not a message", field.name()))?;
    }
    let value = parse_value(leaf, raw)?;
    if leaf.is_list() {
        let list = current
            .get_field_mut(leaf)
            .as_list_mut()
            .ok_or_else(|| format!("field '{}' is not repeated", leaf.name()))?;
        if !append {
            list.clear();
        }
        list.push(value);
        Ok(())
    } else {
        current
            .try_set_field(leaf, value)
            .map_err(|e| e.to_string())
    }
}

/// Accepts standard and URL-safe base64, with or without padding, as the
/// proto3 JSON mapping does for `bytes`.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Converts one string (path or query value) to a value of `field`'s element
/// type.
fn parse_value(field: &FieldDescriptor, raw: &str) -> Result<Value, String> {
    fn num<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, String> {
        raw.parse().map_err(|_| format!("'{raw}' is not {what}"))
    }
    Ok(match field.kind() {
        Kind::Double => Value::F64(num(raw, "a number")?),
        Kind::Float => Value::F32(num(raw, "a number")?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(num(raw, "a 32-bit integer")?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(num(raw, "a 64-bit integer")?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(num(raw, "an unsigned 32-bit integer")?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(num(raw, "an unsigned 64-bit integer")?),
        Kind::Bool => Value::Bool(parse_bool(raw)?),
        Kind::String => Value::String(raw.to_owned()),
        Kind::Bytes => {
            let bytes = BASE64_STANDARD
                .decode(raw)
                .or_else(|_| BASE64_URL_SAFE.decode(raw))
                .map_err(|_| format!("'{raw}' is not base64"))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(e) => match e.get_value_by_name(raw) {
            Some(v) => Value::EnumNumber(v.number()),
            None => Value::EnumNumber(
                raw.parse()
                    .map_err(|_| format!("'{raw}' is not a value of {}", e.full_name()))?,
            ),
        },
        Kind::Message(m) if is_string_convertible_message(&m) => {
            // Well-known types take their JSON string form (`2024-01-02T03:04:05Z`,
            // `1.5s`, `a,b`); BoolValue takes a JSON bool.
            let json = if m.full_name() == "google.protobuf.BoolValue" {
                serde_json::Value::Bool(parse_bool(raw)?)
            } else {
                serde_json::Value::String(raw.to_owned())
            };
            let msg = DynamicMessage::deserialize(m, json).map_err(|e| e.to_string())?;
            Value::Message(msg)
        }
        Kind::Message(m) => return Err(format!("{} cannot be set from a string", m.full_name())),
    })
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "True" | "TRUE" | "1" => Ok(true),
        "false" | "False" | "FALSE" | "0" => Ok(false),
        _ => Err(format!("'{raw}' is not a bool")),
    }
}

#[cfg(test)]
#[path = "bind/tests.rs"]
mod tests;
