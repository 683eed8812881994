//! `google.api.http` path templates: parsing and matching.
//!
//! This module owns the template grammar from `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! [`PathTemplate::parse`] turns a template into a flat list of segments plus
//! the variables that cover ranges of them; [`PathTemplate::match_path`] checks
//! a request path against it and returns the variable bindings, percent-decoded
//! as the spec asks. Which field a binding sets, and how its string becomes a
//! typed value, is left to [`crate::bind`]; choosing between templates is left
//! to [`crate::route_table`].

use std::borrow::Cow;
use std::fmt;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment that must match exactly (after percent-decoding).
    Literal(String),
    /// `*`: exactly one segment, possibly empty (grpc-gateway binds `""` for `//`).
    Wildcard,
    /// `**`: zero or more segments; at most one per template.
    DeepWildcard,
}

/// A `{field.path=...}` variable covering `segments[start..end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The dotted field path, e.g. `book.name`.
    pub field_path: String,
    /// Index of the first segment the variable covers.
    pub start: usize,
    /// Index one past the last segment the variable covers.
    pub end: usize,
}

impl Variable {
    /// Whether the variable may span several segments (anything but a lone
    /// `*`). Multi-segment values keep reserved characters percent-encoded.
    pub fn is_multi_segment(&self, segments: &[Segment]) -> bool {
        !matches!(
            segments.get(self.start..self.end),
            Some([Segment::Wildcard])
        )
    }
}

/// A parsed `google.api.http` path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// What went wrong while parsing a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathTemplateErrorKind {
    /// A specific token was expected, e.g. `'}'`.
    Expected(&'static str),
    /// `{` inside a variable.
    NestedVariable,
    /// More than one `**` in a template.
    MultipleDeepWildcards,
    /// The same field path bound twice.
    DuplicateVariable(String),
}

impl fmt::Display for PathTemplateErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expected(what) => write!(f, "expected {what}"),
            Self::NestedVariable => f.write_str("variables cannot be nested"),
            Self::MultipleDeepWildcards => f.write_str("only one '**' is allowed"),
            Self::DuplicateVariable(name) => write!(f, "variable '{name}' bound twice"),
        }
    }
}

/// A template syntax error, e.g. "syntax error at column 9: expected '}'".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at column {column}: {kind}")]
pub struct PathTemplateError {
    /// 1-based column (in bytes) where the error was found.
    pub column: usize,
    /// What was wrong.
    pub kind: PathTemplateErrorKind,
}

/// A variable bound while matching a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathBinding {
    /// The dotted field path from the template, e.g. `book.name`.
    pub field_path: String,
    /// The percent-decoded value.
    pub value: String,
}

impl PathTemplate {
    /// Parses a template such as `/v1/{name=shelves/*/books/*}:publish`.
    ///
    /// # Errors
    ///
    /// Returns a [`PathTemplateError`] with the 1-based column of the first
    /// character that does not fit the grammar.
    pub fn parse(source: &str) -> Result<Self, PathTemplateError> {
        let mut parser = Parser {
            bytes: source.as_bytes(),
            pos: 0,
            segments: Vec::new(),
            variables: Vec::new(),
        };
        parser.expect(b'/', "'/'")?;
        parser.segments(false)?;
        let verb = if parser.peek() == Some(b':') {
            parser.pos += 1;
            Some(parser.literal()?)
        } else {
            None
        };
        if parser.pos != parser.bytes.len() {
            return Err(parser.error(PathTemplateErrorKind::Expected("end of template")));
        }
        Ok(Self {
            source: source.to_owned(),
            segments: parser.segments,
            variables: parser.variables,
            verb,
        })
    }

    /// The template text as given to [`PathTemplate::parse`].
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The flattened segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The variables, in template order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The custom verb (without the `:`), if any.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// Matches a raw (still percent-encoded) request path, without query.
    ///
    /// Returns `None` if the path does not match, including when a bound
    /// value does not decode to UTF-8.
    pub fn match_path(&self, path: &str) -> Option<Vec<PathBinding>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        self.match_parts(&parts)
    }

    /// [`PathTemplate::match_path`] on a path already split at `/` (without the leading one),
    /// so that a router trying several templates splits the request path once.
    pub(crate) fn match_parts(&self, parts: &[&str]) -> Option<Vec<PathBinding>> {
        let verb_stripped;
        let parts = match &self.verb {
            // The verb is attached to the last segment: `/v1/books/1:archive`.
            Some(verb) => {
                let (last, init) = parts.split_last()?;
                let stem = last.strip_suffix(verb.as_str())?.strip_suffix(':')?;
                verb_stripped = init.iter().copied().chain([stem]).collect::<Vec<_>>();
                verb_stripped.as_slice()
            }
            None => parts,
        };
        let spans = self.match_segments(parts)?;
        let mut bindings = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let from = spans.get(var.start)?.0;
            let to = spans.get(var.end.checked_sub(1)?)?.1;
            let keep_reserved = var.is_multi_segment(&self.segments);
            let value = match parts.get(from..to)? {
                [one] => percent_decode(one, keep_reserved)?.into_owned(),
                many => percent_decode(&many.join("/"), keep_reserved)?.into_owned(),
            };
            bindings.push(PathBinding {
                field_path: var.field_path.clone(),
                value,
            });
        }
        Some(bindings)
    }

    /// For each template segment, the `[from, to)` range of request parts it
    /// consumed. `**` takes whatever the segments around it leave over.
    fn match_segments(&self, parts: &[&str]) -> Option<Vec<(usize, usize)>> {
        let deep = self
            .segments
            .iter()
            .position(|s| *s == Segment::DeepWildcard);
        let fixed = self.segments.len() - usize::from(deep.is_some());
        if deep.is_none() && parts.len() != fixed {
            return None;
        }
        if parts.len() < fixed {
            return None;
        }
        let deep_len = parts.len() - fixed;
        let mut spans = Vec::with_capacity(self.segments.len());
        let mut at = 0;
        for seg in &self.segments {
            let len = match seg {
                Segment::DeepWildcard => deep_len,
                // An empty segment (`/users//_reactivate`) binds "": grpc-gateway does the
                // same, so the handler, not the router, answers it (INVALID_ARGUMENT).
                Segment::Wildcard => {
                    parts.get(at)?;
                    1
                }
                Segment::Literal(lit) => {
                    let part = parts.get(at)?;
                    if *part != lit && percent_decode(part, false).as_deref() != Some(lit) {
                        return None;
                    }
                    1
                }
            };
            spans.push((at, at + len));
            at += len;
        }
        Some(spans)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, kind: PathTemplateErrorKind) -> PathTemplateError {
        PathTemplateError {
            column: self.pos + 1,
            kind,
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), PathTemplateError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(PathTemplateErrorKind::Expected(what)))
        }
    }

    fn segments(&mut self, in_variable: bool) -> Result<(), PathTemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() == Some(b'/') {
                self.pos += 1;
            } else {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), PathTemplateError> {
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                if self.peek() == Some(b'*') {
                    if self.segments.contains(&Segment::DeepWildcard) {
                        return Err(self.error(PathTemplateErrorKind::MultipleDeepWildcards));
                    }
                    self.pos += 1;
                    self.segments.push(Segment::DeepWildcard);
                } else {
                    self.segments.push(Segment::Wildcard);
                }
                Ok(())
            }
            Some(b'{') if in_variable => Err(self.error(PathTemplateErrorKind::NestedVariable)),
            Some(b'{') => self.variable(),
            _ => {
                let lit = self.literal()?;
                self.segments.push(Segment::Literal(lit));
                Ok(())
            }
        }
    }

    fn variable(&mut self) -> Result<(), PathTemplateError> {
        let open = self.pos;
        self.pos += 1;
        let field_path = self.field_path()?;
        let start = self.segments.len();
        if self.peek() == Some(b'=') {
            self.pos += 1;
            self.segments(true)?;
        } else {
            // `{name}` is shorthand for `{name=*}`.
            self.segments.push(Segment::Wildcard);
        }
        self.expect(b'}', "'}'")?;
        if self.variables.iter().any(|v| v.field_path == field_path) {
            return Err(PathTemplateError {
                column: open + 1,
                kind: PathTemplateErrorKind::DuplicateVariable(field_path),
            });
        }
        let end = self.segments.len();
        self.variables.push(Variable {
            field_path,
            start,
            end,
        });
        Ok(())
    }

    fn field_path(&mut self) -> Result<String, PathTemplateError> {
        let start = self.pos;
        loop {
            self.ident()?;
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(
            String::from_utf8_lossy(self.bytes.get(start..self.pos).unwrap_or_default())
                .into_owned(),
        )
    }

    fn ident(&mut self) -> Result<(), PathTemplateError> {
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.pos += 1,
            _ => return Err(self.error(PathTemplateErrorKind::Expected("a field name"))),
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.pos += 1;
        }
        Ok(())
    }

    fn literal(&mut self) -> Result<String, PathTemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'%' {
                let hex = self.bytes.get(self.pos + 1..self.pos + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(
                        self.error(PathTemplateErrorKind::Expected("two hex digits after '%'"))
                    );
                }
                self.pos += 3;
            } else if is_literal_byte(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err(self.error(PathTemplateErrorKind::Expected("a path segment")));
        }
        let raw = String::from_utf8_lossy(self.bytes.get(start..self.pos).unwrap_or_default())
            .into_owned();
        // Literals are compared decoded; the template author may have encoded them.
        let decoded = percent_decode(&raw, false).map(Cow::into_owned);
        Ok(decoded.unwrap_or(raw))
    }
}

/// RFC 3986 `pchar` minus `:` (the verb separator), `*` (wildcards) and `%`
/// (handled separately).
fn is_literal_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'@'
        )
}

/// RFC 6570 reserved characters: kept encoded in multi-segment variables
/// (`{+var}` expansion), see `google/api/http.proto`, "Path template syntax".
fn is_reserved(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

/// Percent-decodes `raw`. With `keep_reserved`, escapes of reserved
/// characters (such as `%2F`) stay as they are. Returns `None` for a
/// malformed escape or a result that is not UTF-8.
pub(crate) fn percent_decode(raw: &str, keep_reserved: bool) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            let decoded = hi << 4 | lo;
            if keep_reserved && is_reserved(decoded) {
                out.extend_from_slice(bytes.get(i..i + 3)?);
            } else {
                out.push(decoded);
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "path_template/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "path_template/proptests.rs"]
mod proptests;
