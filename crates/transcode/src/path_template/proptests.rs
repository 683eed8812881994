//! Property tests: a template built from arbitrary segments, variables and verb, formatted as
//! text, parses back to exactly those parts (and displays as the same text); and a request
//! path made from it matches, binding each variable to its value, decoded as the spec says
//! (reserved characters kept encoded in multi-segment variables).

use proptest::prelude::*;

use super::*;

/// A literal character: mostly ones a template writes as they are, some that must be
/// percent-encoded (`/`, `:`, `*`, `{`, `%`, space, non-ASCII).
fn literal_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::sample::select(
            "abcxyzABZ0189-._~!$&'()+,;=@".chars().collect::<Vec<_>>()
        ),
        1 => proptest::sample::select(vec!['/', ':', '*', '{', '}', '%', ' ', '?', 'é', '€']),
    ]
}

/// A literal segment, decoded.
fn literal() -> impl Strategy<Value = String> {
    proptest::collection::vec(literal_char(), 1..6).prop_map(|c| c.into_iter().collect())
}

/// A verb: written as it is in requests, so only characters that need no encoding.
fn verb() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.~-]{1,8}"
}

fn encode(decoded: &str) -> String {
    let mut out = String::new();
    for b in decoded.bytes() {
        if is_literal_byte(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a multi-segment variable binds for the literal `decoded` sent as [`encode`]d:
/// the escapes of reserved characters stay.
fn kept_reserved(decoded: &str) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 4];
    for c in decoded.chars() {
        let s = c.encode_utf8(&mut buf);
        match s.as_bytes() {
            [b] if !is_literal_byte(*b) && is_reserved(*b) => out.push_str(&format!("%{b:02X}")),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Item {
    Segment(Segment),
    /// `{name}` (`None`) or `{name=segments}`.
    Variable(String, Option<Vec<Segment>>),
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => literal().prop_map(Segment::Literal),
        1 => Just(Segment::Wildcard),
        1 => Just(Segment::DeepWildcard),
    ]
}

fn field_path() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z_][a-z0-9_]{0,4}", 1..3).prop_map(|p| p.join("."))
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        2 => segment().prop_map(Item::Segment),
        1 => (field_path(), proptest::option::of(proptest::collection::vec(segment(), 1..3)))
            .prop_map(|(name, segs)| Item::Variable(name, segs)),
    ]
}

/// Items with at most one `**` and distinct variable names, and an optional verb.
fn template() -> impl Strategy<Value = (Vec<Item>, Option<String>)> {
    (
        proptest::collection::vec(item(), 1..6),
        proptest::option::of(verb()),
    )
        .prop_filter("one '**' at most, each variable once", |(items, _)| {
            let mut names = Vec::new();
            let mut deep = 0;
            for item in items {
                let segs: &[Segment] = match item {
                    Item::Segment(s) => std::slice::from_ref(s),
                    Item::Variable(name, segs) => {
                        names.push(name.clone());
                        segs.as_deref().unwrap_or_default()
                    }
                };
                deep += segs.iter().filter(|s| **s == Segment::DeepWildcard).count();
            }
            let count = names.len();
            names.sort();
            names.dedup();
            deep <= 1 && names.len() == count
        })
}

fn format_segments(segs: &[Segment]) -> String {
    let parts: Vec<String> = segs
        .iter()
        .map(|s| match s {
            Segment::Literal(lit) => encode(lit),
            Segment::Wildcard => "*".into(),
            Segment::DeepWildcard => "**".into(),
        })
        .collect();
    parts.join("/")
}

fn format(items: &[Item], verb: Option<&str>) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            Item::Segment(s) => format_segments(std::slice::from_ref(s)),
            Item::Variable(name, None) => format!("{{{name}}}"),
            Item::Variable(name, Some(segs)) => format!("{{{name}={}}}", format_segments(segs)),
        })
        .collect();
    let mut out = format!("/{}", parts.join("/"));
    if let Some(verb) = verb {
        out.push(':');
        out.push_str(verb);
    }
    out
}

/// The segments and variables the parser should find.
fn expected(items: &[Item]) -> (Vec<Segment>, Vec<Variable>) {
    let mut segments = Vec::new();
    let mut variables = Vec::new();
    for item in items {
        match item {
            Item::Segment(s) => segments.push(s.clone()),
            Item::Variable(name, segs) => {
                let start = segments.len();
                match segs {
                    Some(segs) => segments.extend(segs.iter().cloned()),
                    None => segments.push(Segment::Wildcard),
                }
                variables.push(Variable {
                    field_path: name.clone(),
                    start,
                    end: segments.len(),
                });
            }
        }
    }
    (segments, variables)
}

/// A piece of a request path value: as sent, decoded in a single-segment variable, and
/// decoded in a multi-segment one (reserved characters stay encoded).
fn atom() -> impl Strategy<Value = (&'static str, &'static str, &'static str)> {
    proptest::sample::select(vec![
        ("a", "a", "a"),
        ("Z9", "Z9", "Z9"),
        ("-._~", "-._~", "-._~"),
        ("%20", " ", " "),
        ("%C3%A9", "é", "é"),
        ("%2F", "/", "%2F"),
        ("%3a", ":", "%3a"),
        ("%25", "%", "%"),
    ])
}

/// A value for one request path segment: (as sent, decoded single, decoded multi).
fn part() -> impl Strategy<Value = (String, String, String)> {
    proptest::collection::vec(atom(), 0..4).prop_map(|atoms| {
        let mut out = (String::new(), String::new(), String::new());
        for (raw, single, multi) in atoms {
            out.0.push_str(raw);
            out.1.push_str(single);
            out.2.push_str(multi);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn formatted_templates_parse_back((items, verb) in template()) {
        let text = format(&items, verb.as_deref());
        let parsed = PathTemplate::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let (segments, variables) = expected(&items);
        prop_assert_eq!(parsed.segments(), &segments[..], "{}", text);
        prop_assert_eq!(parsed.variables(), &variables[..], "{}", text);
        prop_assert_eq!(parsed.verb(), verb.as_deref(), "{}", text);
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(PathTemplate::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn paths_built_from_a_template_bind_its_variables(
        (items, verb) in template(),
        values in proptest::collection::vec(part(), 8),
        deep_len in 0usize..3,
    ) {
        let text = format(&items, verb.as_deref());
        let parsed = PathTemplate::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        // Request parts per template segment, and each part's two decodings.
        let mut raw: Vec<Vec<(String, String, String)>> = Vec::new();
        let mut next = values.iter().cycle();
        for seg in parsed.segments() {
            raw.push(match seg {
                Segment::Literal(lit) => vec![(encode(lit), lit.clone(), kept_reserved(lit))],
                Segment::Wildcard => vec![next.next().cloned().unwrap_or_default()],
                Segment::DeepWildcard => (0..deep_len)
                    .map(|_| next.next().cloned().unwrap_or_default())
                    .collect(),
            });
        }
        let mut path = String::new();
        for (raw_part, _, _) in raw.iter().flatten() {
            path.push('/');
            path.push_str(raw_part);
        }
        if path.is_empty() {
            // Only a `**` that took nothing: the path is the root.
            path.push('/');
        }
        if let Some(verb) = &verb {
            path.push(':');
            path.push_str(verb);
        }
        let bindings = parsed
            .match_path(&path)
            .ok_or_else(|| TestCaseError::fail(format!("{text} does not match {path}")))?;
        prop_assert_eq!(bindings.len(), parsed.variables().len());
        for (var, binding) in parsed.variables().iter().zip(&bindings) {
            let covered = raw.get(var.start..var.end).unwrap_or_default();
            let multi = var.is_multi_segment(parsed.segments());
            let want: Vec<&str> = covered
                .iter()
                .flatten()
                .map(|(_, single, m)| if multi { m.as_str() } else { single.as_str() })
                .collect();
            prop_assert_eq!(&binding.field_path, &var.field_path);
            prop_assert_eq!(&binding.value, &want.join("/"), "{} on {}", text, path);
        }
    }
}
