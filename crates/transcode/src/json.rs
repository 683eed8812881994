//! JSON ⇄ protobuf for REST bodies, per the proto3 JSON mapping.
//!
//! This module owns [`JsonOptions`] and the two directions: parsing a JSON
//! request body into a message ([`parse_message`]) and rendering a response
//! message as the REST response body ([`encode_response`], honouring
//! `response_body`). The mapping itself is prost-reflect's serde support; path
//! and query binding are left to [`crate::bind`].

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};

use crate::error::TranscodeError;
use crate::route_table::Route;

/// How JSON is read and written.
///
/// The defaults match ZITADEL's gateway: lowerCamelCase names out, zero values
/// omitted, enums by name, unknown input fields ignored. 64-bit integers are
/// always written as strings, as the proto3 JSON mapping requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOptions {
    /// Write fields that hold their zero value (default `false`).
    pub emit_unpopulated: bool,
    /// Write proto field names (`page_size`) instead of lowerCamelCase
    /// (`pageSize`) (default `false`). Input accepts both either way.
    pub use_proto_field_names: bool,
    /// Write enums as numbers instead of names (default `false`).
    pub use_enum_numbers: bool,
    /// Ignore unknown fields in request bodies (default `true`); when `false`
    /// they are an `InvalidArgument` error.
    pub ignore_unknown_fields: bool,
    /// Ignore query parameters that name no field (default `true`, as ZITADEL's
    /// grpc-gateway does: cache-busters like `?_=123` pass); when `false` they are
    /// an `InvalidArgument` error (the gateway's per-service `strict_query`).
    pub ignore_unknown_query_parameters: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        Self {
            emit_unpopulated: false,
            use_proto_field_names: false,
            use_enum_numbers: false,
            ignore_unknown_fields: true,
            ignore_unknown_query_parameters: true,
        }
    }
}

impl JsonOptions {
    /// prost-reflect options for writing JSON.
    pub fn serialize_options(&self) -> SerializeOptions {
        SerializeOptions::new()
            .stringify_64_bit_integers(true)
            .skip_default_fields(!self.emit_unpopulated)
            .use_proto_field_name(self.use_proto_field_names)
            .use_enum_numbers(self.use_enum_numbers)
    }

    fn writer_options(&self) -> ser::Options {
        ser::Options {
            reflect: self.serialize_options(),
            stringify_64_bit_integers: true,
            skip_default_fields: !self.emit_unpopulated,
            use_proto_field_name: self.use_proto_field_names,
            use_enum_numbers: self.use_enum_numbers,
        }
    }

    /// prost-reflect options for reading JSON.
    pub fn deserialize_options(&self) -> DeserializeOptions {
        DeserializeOptions::new().deny_unknown_fields(!self.ignore_unknown_fields)
    }
}

/// Parses a JSON body into a message of type `desc`. An empty (or
/// all-whitespace) body yields the empty message.
///
/// # Errors
///
/// [`TranscodeError::InvalidJson`] with serde_json's line and column when the
/// body is not JSON, has trailing data, or does not fit the message type.
pub fn parse_message(
    desc: MessageDescriptor,
    body: &[u8],
    opts: &JsonOptions,
) -> Result<DynamicMessage, TranscodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc));
    }
    // protojson's strictness first (duplicate fields, integer ranges), then the conversion.
    strict::check_message(&desc, &mut serde_json::Deserializer::from_slice(body))
        .map_err(TranscodeError::InvalidJson)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let msg = DynamicMessage::deserialize_with_options(desc, &mut de, &opts.deserialize_options())
        .map_err(TranscodeError::InvalidJson)?;
    de.end().map_err(TranscodeError::InvalidJson)?;
    Ok(msg)
}

/// Parses a JSON body into the value of one top-level field of `parent`
/// (the `body: "field"` case of an `HttpRule`). Returns `None` for an empty
/// body.
pub(crate) fn parse_field(
    parent: &MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
    opts: &JsonOptions,
) -> Result<Option<prost_reflect::Value>, TranscodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Kind::Message(desc) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        let msg = parse_message(desc, body, opts)?;
        return Ok(Some(prost_reflect::Value::Message(msg)));
    }
    // Scalars, lists and maps: check and parse once to keep serde_json's position
    // on errors, then let prost-reflect convert `{"field": <body>}`.
    strict::check_field(field, &mut serde_json::Deserializer::from_slice(body))
        .map_err(TranscodeError::InvalidJson)?;
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(TranscodeError::InvalidJson)?;
    let mut wrapper = serde_json::Map::new();
    wrapper.insert(field.name().to_owned(), value);
    let mut msg = DynamicMessage::deserialize_with_options(
        parent.clone(),
        serde_json::Value::Object(wrapper),
        &opts.deserialize_options(),
    )
    .map_err(TranscodeError::InvalidJson)?;
    Ok(msg.take_field(field))
}

/// Renders a response message as the REST response body: the whole message,
/// or only the `response_body` field when the route names one.
///
/// # Errors
///
/// [`TranscodeError::EncodeResponse`] when prost-reflect cannot render a
/// value (e.g. an out-of-range Timestamp or an `Any` whose type is unknown).
pub fn encode_response(
    route: &Route,
    message: &DynamicMessage,
    opts: &JsonOptions,
) -> Result<Vec<u8>, TranscodeError> {
    encode_http_response(route, message, opts).map(|(_, body)| body)
}

/// Like [`encode_response`], with the content type: `application/json`, or
/// the message's own when the response (or its `response_body` field) is a
/// `google.api.HttpBody`, whose data is then the body as is.
///
/// # Errors
///
/// As [`encode_response`].
pub fn encode_http_response(
    route: &Route,
    message: &DynamicMessage,
    opts: &JsonOptions,
) -> Result<(String, Vec<u8>), TranscodeError> {
    let http_body = match route.response_body() {
        None if crate::bind::is_http_body(&prost_reflect::ReflectMessage::descriptor(message)) => {
            Some(message.clone())
        }
        Some(field) => match field.kind() {
            Kind::Message(m) if crate::bind::is_http_body(&m) && !field.is_list() => Some(
                message
                    .get_field(field)
                    .as_message()
                    .cloned()
                    .unwrap_or_else(|| DynamicMessage::new(m)),
            ),
            _ => None,
        },
        None => None,
    };
    if let Some(body) = http_body {
        let content_type = body
            .get_field_by_number(1)
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|ct| !ct.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let data = body
            .get_field_by_number(2)
            .and_then(|v| v.as_bytes().map(|b| b.to_vec()))
            .unwrap_or_default();
        return Ok((content_type, data));
    }
    let body = encode_body(route, message, opts)?;
    Ok(("application/json".to_owned(), body))
}

fn encode_body(
    route: &Route,
    message: &DynamicMessage,
    opts: &JsonOptions,
) -> Result<Vec<u8>, TranscodeError> {
    match route.response_body() {
        None => encode_message(message, opts),
        Some(field) => encode_field(message, field, opts),
    }
}

/// Renders one message as JSON bytes.
///
/// # Errors
///
/// [`TranscodeError::EncodeResponse`] when a value cannot be rendered.
pub fn encode_message(
    message: &DynamicMessage,
    opts: &JsonOptions,
) -> Result<Vec<u8>, TranscodeError> {
    // The output of prost-reflect's serializer, byte for byte, written faster (`ser`).
    let mut ser = serde_json::Serializer::new(Vec::with_capacity(256));
    let options = opts.writer_options();
    serde::Serialize::serialize(
        &ser::Msg {
            message,
            options: &options,
        },
        &mut ser,
    )
    .map_err(|e| TranscodeError::EncodeResponse(e.to_string()))?;
    Ok(ser.into_inner())
}

fn encode_field(
    message: &DynamicMessage,
    field: &FieldDescriptor,
    opts: &JsonOptions,
) -> Result<Vec<u8>, TranscodeError> {
    if let Kind::Message(desc) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        let value = message.get_field(field);
        return match value.as_message() {
            Some(sub) => encode_message(sub, opts),
            None => encode_message(&DynamicMessage::new(desc), opts),
        };
    }
    // Scalars, lists and maps have no standalone serializer in prost-reflect:
    // render the parent and pick the field out.
    let key = if opts.use_proto_field_names {
        field.name()
    } else {
        field.json_name()
    };
    let rendered = to_json_value(message, opts)?;
    let picked = match rendered.get(key) {
        Some(v) => v.clone(),
        None if field.is_list() => serde_json::Value::Array(Vec::new()),
        None if field.is_map() => serde_json::Value::Object(serde_json::Map::new()),
        None => {
            // A zero scalar omitted by `emit_unpopulated: false`: a bare
            // response body still needs a value.
            let full = JsonOptions {
                emit_unpopulated: true,
                ..opts.clone()
            };
            to_json_value(message, &full)?
                .get(key)
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        }
    };
    serde_json::to_vec(&picked).map_err(|e| TranscodeError::EncodeResponse(e.to_string()))
}

fn to_json_value(
    message: &DynamicMessage,
    opts: &JsonOptions,
) -> Result<serde_json::Value, TranscodeError> {
    message
        .serialize_with_options(serde_json::value::Serializer, &opts.serialize_options())
        .map_err(|e| TranscodeError::EncodeResponse(e.to_string()))
}

#[path = "json/ser.rs"]
mod ser;
mod strict;

#[cfg(test)]
#[path = "json/tests.rs"]
mod tests;
