//! The checks protojson makes that prost-reflect's JSON reader does not: an object naming a
//! field twice (by either of its names, `sortingColumn` and `sorting_column`), two members of
//! one oneof, and integers outside their field's range (`18446744073709551616` for a uint64
//! would otherwise be rounded through a float and saturate). A pass over the same JSON, guided
//! by the descriptor, before prost-reflect converts it; errors name the field by its path.
//!
//! Hand-written because neither serde_json (its `Value` keeps the last duplicate) nor
//! prost-reflect offers these checks; the walk is a serde visitor, so serde_json's position
//! and its recursion limit apply.

use std::fmt;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Checks `de` as a JSON message of type `desc`.
pub(super) fn check_message<'de, D: Deserializer<'de>>(
    desc: &MessageDescriptor,
    de: D,
) -> Result<(), D::Error> {
    Check {
        expect: Expect::Message(desc),
        path: &Path::Root,
    }
    .deserialize(de)
    .map(|_| ())
}

/// Checks `de` as the JSON value of `field` (a list, a map or a singular value).
pub(super) fn check_field<'de, D: Deserializer<'de>>(
    field: &FieldDescriptor,
    de: D,
) -> Result<(), D::Error> {
    let path = Path::Field {
        parent: &Path::Root,
        name: field.json_name(),
    };
    Check {
        expect: Expect::of_field(field),
        path: &path,
    }
    .deserialize(de)
    .map(|_| ())
}

/// Where in the document a value is, for error messages.
enum Path<'a> {
    Root,
    Field { parent: &'a Path<'a>, name: &'a str },
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Field {
                parent: Path::Root,
                name,
            } => f.write_str(name),
            Self::Field { parent, name } => write!(f, "{parent}.{name}"),
        }
    }
}

/// What a JSON value should be.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// A message (an object, or a well-known type's own form).
    Message(&'a MessageDescriptor),
    /// A repeated field's array.
    List(&'a FieldDescriptor),
    /// A map field's object.
    Map(&'a FieldDescriptor),
    /// A singular value of this field's kind (a list element, a map value).
    Single(&'a FieldDescriptor),
    /// An integer in `min..=max` (also written as a string or a float).
    Int {
        min: i128,
        max: i128,
        kind: &'static str,
    },
    /// Anything: only objects are checked for duplicate keys.
    Any,
}

impl<'a> Expect<'a> {
    fn of_field(field: &'a FieldDescriptor) -> Self {
        if field.is_map() {
            Self::Map(field)
        } else if field.is_list() {
            Self::List(field)
        } else {
            Self::Single(field)
        }
    }

    /// The expectation for one scalar or enum value of `kind` (messages are handled apart).
    fn of_kind(kind: &Kind) -> Expect<'static> {
        match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                int(i32::MIN.into(), i32::MAX.into(), "int32")
            }
            Kind::Uint32 | Kind::Fixed32 => int(0, u32::MAX.into(), "uint32"),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                int(i64::MIN.into(), i64::MAX.into(), "int64")
            }
            Kind::Uint64 | Kind::Fixed64 => int(0, u64::MAX.into(), "uint64"),
            Kind::Enum(_) => int(i32::MIN.into(), i32::MAX.into(), "enum"),
            _ => Expect::Any,
        }
    }
}

fn int(min: i128, max: i128, kind: &'static str) -> Expect<'static> {
    Expect::Int { min, max, kind }
}

/// One value to check; yields whether it was `null`.
struct Check<'a> {
    expect: Expect<'a>,
    path: &'a Path<'a>,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        match self.expect {
            Expect::Single(field) => {
                let kind = field.kind();
                match &kind {
                    Kind::Message(desc) => Check {
                        expect: Expect::Message(desc),
                        path: self.path,
                    }
                    .deserialize(de),
                    other => Check {
                        expect: Expect::of_kind(other),
                        path: self.path,
                    }
                    .deserialize(de),
                }
            }
            Expect::Message(desc) => match desc.full_name() {
                "google.protobuf.Int32Value"
                | "google.protobuf.UInt32Value"
                | "google.protobuf.Int64Value"
                | "google.protobuf.UInt64Value" => {
                    let expect = desc
                        .get_field(1)
                        .map_or(Expect::Any, |value| Expect::of_kind(&value.kind()));
                    Check {
                        expect,
                        path: self.path,
                    }
                    .deserialize(de)
                }
                name if name.starts_with("google.protobuf.") && name != "google.protobuf.Empty" => {
                    Check {
                        expect: Expect::Any,
                        path: self.path,
                    }
                    .deserialize(de)
                }
                _ => de.deserialize_any(self),
            },
            _ => de.deserialize_any(self),
        }
    }
}

impl Check<'_> {
    fn out_of_range<E: de::Error>(&self, value: impl fmt::Display) -> E {
        let Expect::Int { kind, .. } = self.expect else {
            return E::custom(format!("field {} is invalid", self.path));
        };
        E::custom(format!(
            "field {}: {value} is out of range for {kind}",
            self.path
        ))
    }

    fn in_range<E: de::Error>(&self, value: i128) -> Result<bool, E> {
        match self.expect {
            Expect::Int { min, max, .. } if value < min || value > max => {
                Err(self.out_of_range(value))
            }
            _ => Ok(false),
        }
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.in_range(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.in_range(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        // serde_json hands over as a float every number that fits no 64-bit integer: an
        // integral one out of the field's range is refused here (a float cast would saturate);
        // a fraction is left to prost-reflect, which refuses it for integer fields.
        if let Expect::Int { min, max, .. } = self.expect
            && v.fract() == 0.0
            // Exclusive bounds: i64::MAX and u64::MAX round up to 2^63 and 2^64 as floats.
            && !(v >= min as f64 && v < max as f64 + 1.0)
        {
            return Err(self.out_of_range(v));
        }
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if let Expect::Int { .. } = self.expect {
            let digits = v.strip_prefix('-').unwrap_or(v);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return match v.parse::<i128>() {
                    Ok(value) => self.in_range(value),
                    Err(_) => Err(self.out_of_range(v)),
                };
            }
        }
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        match self.expect {
            Expect::List(field) => {
                while seq
                    .next_element_seed(Check {
                        expect: Expect::Single(field),
                        path: self.path,
                    })?
                    .is_some()
                {}
            }
            _ => {
                while seq
                    .next_element_seed(Check {
                        expect: Expect::Any,
                        path: self.path,
                    })?
                    .is_some()
                {}
            }
        }
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        match self.expect {
            Expect::Message(desc) => {
                // (field number, the key that named it); oneof index and its member's key.
                let mut seen: Vec<(u32, String)> = Vec::new();
                let mut oneofs: Vec<(String, String)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(field) = desc
                        .get_field_by_json_name(&key)
                        .or_else(|| desc.get_field_by_name(&key))
                    else {
                        // Unknown fields are prost-reflect's to accept or refuse.
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    let path = Path::Field {
                        parent: self.path,
                        name: field.json_name(),
                    };
                    if let Some((_, first)) = seen.iter().find(|(n, _)| *n == field.number()) {
                        return Err(de::Error::custom(format!(
                            "field {path} is given twice (as \"{first}\" and \"{key}\")"
                        )));
                    }
                    seen.push((field.number(), key.clone()));
                    let null = map.next_value_seed(Check {
                        expect: Expect::of_field(&field),
                        path: &path,
                    })?;
                    if let Some(oneof) = field.containing_oneof()
                        && !oneof.is_synthetic()
                        && !null
                    {
                        if let Some((_, other)) = oneofs.iter().find(|(o, _)| o == oneof.name()) {
                            return Err(de::Error::custom(format!(
                                "fields \"{other}\" and \"{key}\" of oneof {} are both set",
                                oneof.name()
                            )));
                        }
                        oneofs.push((oneof.name().to_owned(), key));
                    }
                }
            }
            Expect::Map(field) => {
                let value_kind = field
                    .kind()
                    .as_message()
                    .and_then(|entry| entry.get_field(2));
                let mut keys: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if keys.contains(&key) {
                        return Err(de::Error::custom(format!(
                            "field {}: map key \"{key}\" is given twice",
                            self.path
                        )));
                    }
                    let expect = value_kind.as_ref().map_or(Expect::Any, Expect::Single);
                    map.next_value_seed(Check {
                        expect,
                        path: self.path,
                    })?;
                    keys.push(key);
                }
            }
            _ => {
                let mut keys: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if keys.contains(&key) {
                        return Err(de::Error::custom(format!(
                            "duplicate key \"{key}\" in {}",
                            if matches!(self.path, Path::Root) {
                                "the body".to_owned()
                            } else {
                                format!("field {}", self.path)
                            }
                        )));
                    }
                    map.next_value_seed(Check {
                        expect: Expect::Any,
                        path: self.path,
                    })?;
                    keys.push(key);
                }
            }
        }
        Ok(false)
    }
}
