//! The REST route table: every `google.api.http` binding in a descriptor pool,
//! matched against an HTTP method and path.
//!
//! [`RouteTableBuilder`] reads the `google.api.http` option of every method
//! (main pattern plus `additional_bindings`), applies the per-service path
//! prefix from configuration, validates field references, and freezes the
//! result into an immutable [`RouteTable`]. Two rules with the same HTTP
//! method and the same template shape (variable names aside) are refused,
//! naming both methods. [`RouteTable::find`] picks the most specific matching
//! template (literals over variables over `**`), independent of declaration
//! order; a segment trie keeps the lookup nearly flat in the number of routes. Building the request message is left to
//! [`crate::bind`]; rendering the response to [`crate::json`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use prost_reflect::{DescriptorPool, FieldDescriptor, MethodDescriptor};

use crate::bind::{is_bindable_leaf, resolve_field_path};
use crate::path_template::{PathBinding, PathTemplate, PathTemplateError, Segment, percent_decode};

/// Where the request body goes (`HttpRule.body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySpec {
    /// No body (`body` unset); fields come from the path and query.
    None,
    /// `body: "*"`: the body is the whole request message.
    Whole,
    /// `body: "field"`: the body is this top-level field.
    Field(FieldDescriptor),
}

/// One HTTP binding of one gRPC method.
#[derive(Debug)]
pub struct Route {
    method: MethodDescriptor,
    grpc_path: String,
    http_method: http::Method,
    template: PathTemplate,
    body: BodySpec,
    response_body: Option<FieldDescriptor>,
}

impl Route {
    /// The gRPC method this route calls.
    pub fn method(&self) -> &MethodDescriptor {
        &self.method
    }

    /// The gRPC request path, `/pkg.Service/Method`.
    pub fn grpc_path(&self) -> &str {
        &self.grpc_path
    }

    /// The HTTP method (`GET`, `POST`, or a custom one).
    pub fn http_method(&self) -> &http::Method {
        &self.http_method
    }

    /// The path template, service prefix included.
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// Where the request body goes.
    pub fn body(&self) -> &BodySpec {
        &self.body
    }

    /// The response field rendered as the body (`HttpRule.response_body`), if any.
    pub fn response_body(&self) -> Option<&FieldDescriptor> {
        self.response_body.as_ref()
    }
}

/// A route that matched a request, with its path variable bindings.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    route: Arc<Route>,
    bindings: Vec<PathBinding>,
}

impl RouteMatch {
    /// The matched route.
    pub fn route(&self) -> &Arc<Route> {
        &self.route
    }

    /// Path variables, percent-decoded, in template order.
    pub fn bindings(&self) -> &[PathBinding] {
        &self.bindings
    }
}

/// Why [`RouteTable::find`] found no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No template matches the path.
    #[error("no route matches the path")]
    NotFound,
    /// The path's percent-encoding is malformed: `%` not followed by two hex digits, or
    /// escapes that decode to bytes that are not UTF-8.
    #[error("malformed percent-encoding in the path")]
    BadPath,
    /// Some template matches the path, but not with this HTTP method.
    #[error("method not allowed; allowed: {allowed:?}")]
    MethodNotAllowed {
        /// The methods that would have matched, most specific route first.
        allowed: Vec<http::Method>,
    },
}

/// Why the route table could not be built from the descriptors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteTableError {
    /// A path template in an annotation does not parse.
    #[error("{method}: invalid path template '{template}': {source}")]
    Template {
        /// Full name of the gRPC method.
        method: String,
        /// The template, prefix included.
        template: String,
        /// The syntax error.
        #[source]
        source: PathTemplateError,
    },
    /// An annotation is otherwise invalid (unknown field, bad HTTP method).
    #[error("{method}: {reason}")]
    InvalidRule {
        /// Full name of the gRPC method.
        method: String,
        /// What is wrong.
        reason: String,
    },
    /// Two rules bind the same HTTP method and template shape.
    #[error("conflicting rules: {http_method} {template} is bound by both {first} and {second}")]
    Conflict {
        /// The HTTP method both rules use.
        http_method: String,
        /// The template of the second rule, prefix included.
        template: String,
        /// Full name of the method declared first.
        first: String,
        /// Full name of the method declared second.
        second: String,
    },
    /// A configured prefix does not start with `/`.
    #[error("service '{service}': path prefix '{prefix}' must start with '/'")]
    InvalidPrefix {
        /// Service full name.
        service: String,
        /// The prefix as configured.
        prefix: String,
    },
}

/// Builds a [`RouteTable`] from a descriptor pool.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use switchyard_transcode::RouteTableBuilder;
/// let pool = prost_reflect::DescriptorPool::new();
/// let table = RouteTableBuilder::new(pool)
///     .service_prefix("example.v1.AdminService", "/admin/v1")
///     .build()?;
/// assert!(table.routes().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RouteTableBuilder {
    pool: DescriptorPool,
    prefixes: HashMap<String, String>,
}

impl RouteTableBuilder {
    /// Starts a builder over every service in `pool`.
    pub fn new(pool: DescriptorPool) -> Self {
        Self {
            pool,
            prefixes: HashMap::new(),
        }
    }

    /// Mounts every route of `service` (full name) under `prefix`, e.g.
    /// `/management/v1`. Services without a prefix are mounted at their
    /// annotation paths.
    pub fn service_prefix(mut self, service: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.prefixes.insert(service.into(), prefix.into());
        self
    }

    /// Reads every `google.api.http` annotation and builds the table.
    ///
    /// # Errors
    ///
    /// [`RouteTableError`] for an unparsable template, an annotation naming a
    /// field the message does not have, a bad custom HTTP method, or a prefix
    /// not starting with `/`.
    pub fn build(self) -> Result<RouteTable, RouteTableError> {
        for (service, prefix) in &self.prefixes {
            if !prefix.starts_with('/') {
                return Err(RouteTableError::InvalidPrefix {
                    service: service.clone(),
                    prefix: prefix.clone(),
                });
            }
        }
        let mut routes: Vec<Arc<Route>> = Vec::new();
        let mut shapes: HashMap<(http::Method, String), String> = HashMap::new();
        for service in self.pool.services() {
            let prefix = self
                .prefixes
                .get(service.full_name())
                .map(|p| p.trim_end_matches('/'))
                .unwrap_or("");
            for method in service.methods() {
                let Some(rule) = http_rule(&method) else {
                    continue;
                };
                let mut rules = vec![&rule];
                rules.extend(rule.additional_bindings.iter());
                for r in rules {
                    let route = build_route(&method, r, prefix)?;
                    let key = (route.http_method.clone(), shape(&route.template));
                    if let Some(first) = shapes.get(&key) {
                        return Err(RouteTableError::Conflict {
                            http_method: route.http_method.to_string(),
                            template: route.template.to_string(),
                            first: first.clone(),
                            second: method.full_name().to_owned(),
                        });
                    }
                    shapes.insert(key, method.full_name().to_owned());
                    routes.push(Arc::new(route));
                }
            }
        }
        // Most specific first; the sort is stable, so equal templates keep
        // declaration order.
        routes.sort_by(|a, b| specificity_cmp(&b.template, &a.template));
        let mut trie = TrieNode::default();
        for (index, route) in routes.iter().enumerate() {
            trie.insert(route.template.segments(), index);
        }
        Ok(RouteTable {
            pool: self.pool,
            routes,
            trie,
        })
    }
}

/// All REST routes, immutable once built.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pool: DescriptorPool,
    routes: Vec<Arc<Route>>,
    trie: TrieNode,
}

impl RouteTable {
    /// The descriptor pool the table was built from.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Every route, most specific first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Finds the route for `method` and a raw (percent-encoded) `path`; a
    /// query string, if left on, is ignored. `HEAD` takes the `GET` route of the
    /// path when no rule binds `HEAD` itself (the server sends the headers only).
    ///
    /// # Errors
    ///
    /// [`RouteError::BadPath`] for malformed percent-encoding,
    /// [`RouteError::NotFound`] if no template matches the path,
    /// [`RouteError::MethodNotAllowed`] if templates match but only for other
    /// HTTP methods (`HEAD` listed after `GET`).
    pub fn find(&self, method: &http::Method, path: &str) -> Result<RouteMatch, RouteError> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        // The path is split and decoded once; the trie walks the decoded parts, the templates
        // match the raw ones (a multi-segment variable keeps its reserved escapes).
        let Some(rest) = path.strip_prefix('/') else {
            return if percent_decode(path, false).is_none() {
                Err(RouteError::BadPath)
            } else {
                Err(RouteError::NotFound)
            };
        };
        let raw: Vec<&str> = rest.split('/').collect();
        let decoded = raw
            .iter()
            .map(|part| percent_decode(part, false))
            .collect::<Option<Vec<_>>>()
            .ok_or(RouteError::BadPath)?;
        let mut allowed: Vec<http::Method> = Vec::new();
        let mut head_fallback: Option<RouteMatch> = None;
        for index in self.candidates(&decoded) {
            let Some(route) = self.routes.get(index) else {
                continue;
            };
            let Some(bindings) = route.template.match_parts(&raw) else {
                continue;
            };
            if route.http_method == *method {
                return Ok(RouteMatch {
                    route: Arc::clone(route),
                    bindings,
                });
            }
            if *method == http::Method::HEAD
                && route.http_method == http::Method::GET
                && head_fallback.is_none()
            {
                head_fallback = Some(RouteMatch {
                    route: Arc::clone(route),
                    bindings,
                });
            }
            if !allowed.contains(&route.http_method) {
                allowed.push(route.http_method.clone());
            }
        }
        // Only after every candidate: a rule that binds HEAD itself wins over the GET one.
        if let Some(found) = head_fallback {
            return Ok(found);
        }
        if let Some(get) = allowed.iter().position(|m| *m == http::Method::GET)
            && !allowed.contains(&http::Method::HEAD)
        {
            allowed.insert(get + 1, http::Method::HEAD);
        }
        if allowed.is_empty() {
            Err(RouteError::NotFound)
        } else {
            Err(RouteError::MethodNotAllowed { allowed })
        }
    }
}

impl RouteTable {
    /// Indices of the routes whose segment shape fits the decoded path `parts`, most
    /// specific first. The templates still decide (verbs, percent-decoding).
    fn candidates(&self, parts: &[Cow<'_, str>]) -> Vec<usize> {
        let mut parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
        let mut out = Vec::new();
        self.trie.collect(&parts, &mut out);
        // A custom verb rides on the last segment: `/v1/books/7:archive`.
        if let Some(last) = parts.last_mut()
            && let Some((stem, _verb)) = last.rsplit_once(':')
        {
            *last = stem;
            self.trie.collect(&parts, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A segment trie over the templates: literal children by (decoded) text, one
/// child for `*`, one for `**`; each node lists the routes ending there.
#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Sorted by text. A node has a few literal children (a dozen at most in the ZITADEL
    /// APIs): a binary search over them costs less than hashing the segment with SipHash.
    literals: Vec<(String, TrieNode)>,
    wildcard: Option<Box<TrieNode>>,
    deep: Option<Box<TrieNode>>,
    routes: Vec<usize>,
}

impl TrieNode {
    fn insert(&mut self, segments: &[Segment], index: usize) {
        let Some((first, rest)) = segments.split_first() else {
            self.routes.push(index);
            return;
        };
        let child = match first {
            Segment::Literal(lit) => {
                let at = match self
                    .literals
                    .binary_search_by(|(text, _)| text.as_str().cmp(lit))
                {
                    Ok(at) => at,
                    Err(at) => {
                        self.literals.insert(at, (lit.clone(), TrieNode::default()));
                        at
                    }
                };
                match self.literals.get_mut(at) {
                    Some((_, child)) => child,
                    None => return,
                }
            }
            Segment::Wildcard => self.wildcard.get_or_insert_with(Box::default),
            Segment::DeepWildcard => self.deep.get_or_insert_with(Box::default),
        };
        child.insert(rest, index);
    }

    fn collect(&self, parts: &[&str], out: &mut Vec<usize>) {
        if let Some(deep) = &self.deep {
            // `**` takes zero or more segments; at most one per template.
            for skip in 0..=parts.len() {
                if let Some(rest) = parts.get(skip..) {
                    deep.collect(rest, out);
                }
            }
        }
        let Some((first, rest)) = parts.split_first() else {
            out.extend_from_slice(&self.routes);
            return;
        };
        if let Ok(at) = self
            .literals
            .binary_search_by(|(text, _)| text.as_str().cmp(first))
            && let Some((_, child)) = self.literals.get(at)
        {
            child.collect(rest, out);
        }
        if let Some(child) = &self.wildcard {
            child.collect(rest, out);
        }
    }
}

/// The template with variable names erased: two rules with the same shape and
/// HTTP method can never be told apart.
fn shape(template: &PathTemplate) -> String {
    let mut out = String::new();
    for seg in template.segments() {
        out.push('/');
        match seg {
            Segment::Literal(lit) => out.push_str(lit),
            Segment::Wildcard => out.push('*'),
            Segment::DeepWildcard => out.push_str("**"),
        }
    }
    if let Some(verb) = template.verb() {
        out.push(':');
        out.push_str(verb);
    }
    out
}

/// Orders templates by specificity: segment by segment, a literal beats a
/// variable, which beats `**`; then longer beats shorter; then a verb wins.
fn specificity_cmp(a: &PathTemplate, b: &PathTemplate) -> Ordering {
    fn rank(s: &Segment) -> u8 {
        match s {
            Segment::Literal(_) => 2,
            Segment::Wildcard => 1,
            Segment::DeepWildcard => 0,
        }
    }
    let ra = a.segments().iter().map(rank);
    let rb = b.segments().iter().map(rank);
    ra.cmp(rb)
        .then_with(|| a.verb().is_some().cmp(&b.verb().is_some()))
}

fn build_route(
    method: &MethodDescriptor,
    rule: &HttpRuleProto,
    prefix: &str,
) -> Result<Route, RouteTableError> {
    let invalid = |reason: String| RouteTableError::InvalidRule {
        method: method.full_name().to_owned(),
        reason,
    };
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(p)) => (http::Method::GET, p.as_str()),
        Some(Pattern::Put(p)) => (http::Method::PUT, p.as_str()),
        Some(Pattern::Post(p)) => (http::Method::POST, p.as_str()),
        Some(Pattern::Delete(p)) => (http::Method::DELETE, p.as_str()),
        Some(Pattern::Patch(p)) => (http::Method::PATCH, p.as_str()),
        Some(Pattern::Custom(c)) => {
            let m = http::Method::from_bytes(c.kind.as_bytes())
                .map_err(|_| invalid(format!("invalid custom HTTP method '{}'", c.kind)))?;
            (m, c.path.as_str())
        }
        None => return Err(invalid("google.api.http rule has no pattern".into())),
    };
    let full = format!("{prefix}{path}");
    let template = PathTemplate::parse(&full).map_err(|source| RouteTableError::Template {
        method: method.full_name().to_owned(),
        template: full.clone(),
        source,
    })?;

    let input = method.input();
    for var in template.variables() {
        let fields = resolve_field_path(&input, &var.field_path)
            .map_err(|e| invalid(format!("path variable '{}': {e}", var.field_path)))?;
        if !fields.last().is_some_and(is_bindable_leaf) {
            return Err(invalid(format!(
                "path variable '{}' names a field that cannot be set from a string",
                var.field_path
            )));
        }
    }
    let body =
        match rule.body.as_str() {
            "" => BodySpec::None,
            "*" => BodySpec::Whole,
            name => BodySpec::Field(input.get_field_by_name(name).ok_or_else(|| {
                invalid(format!("body field '{name}' not in {}", input.full_name()))
            })?),
        };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        name => {
            let output = method.output();
            Some(output.get_field_by_name(name).ok_or_else(|| {
                invalid(format!(
                    "response_body field '{name}' not in {}",
                    output.full_name()
                ))
            })?)
        }
    };
    Ok(Route {
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        method: method.clone(),
        http_method,
        template,
        body,
        response_body,
    })
}

/// Reads `google.api.http` (field 72295728 of `MethodOptions`).
///
/// prost-reflect's `options()` keeps the option whether or not the pool holds
/// `google/api/annotations.proto` (as a resolved extension or an unknown
/// field); re-encoding it and decoding into the local [`MethodOptionsProto`]
/// reads both cases the same way.
fn http_rule(method: &MethodDescriptor) -> Option<HttpRuleProto> {
    let bytes = method.options().encode_to_vec();
    MethodOptionsProto::decode(bytes.as_slice()).ok()?.http
}

/// The part of `google.protobuf.MethodOptions` we read.
#[derive(Clone, PartialEq, prost::Message)]
struct MethodOptionsProto {
    #[prost(message, optional, tag = "72295728")]
    http: Option<HttpRuleProto>,
}

/// `google.api.HttpRule`.
#[derive(Clone, PartialEq, prost::Message)]
struct HttpRuleProto {
    #[prost(oneof = "Pattern", tags = "2, 3, 4, 5, 6, 8")]
    pattern: Option<Pattern>,
    #[prost(string, tag = "7")]
    body: String,
    #[prost(message, repeated, tag = "11")]
    additional_bindings: Vec<HttpRuleProto>,
    #[prost(string, tag = "12")]
    response_body: String,
}

/// `google.api.HttpRule.pattern`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum Pattern {
    #[prost(string, tag = "2")]
    Get(String),
    #[prost(string, tag = "3")]
    Put(String),
    #[prost(string, tag = "4")]
    Post(String),
    #[prost(string, tag = "5")]
    Delete(String),
    #[prost(string, tag = "6")]
    Patch(String),
    #[prost(message, tag = "8")]
    Custom(CustomPatternProto),
}

/// `google.api.CustomHttpPattern`.
#[derive(Clone, PartialEq, prost::Message)]
struct CustomPatternProto {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "2")]
    path: String,
}

#[cfg(test)]
#[path = "route_table/tests.rs"]
mod tests;
