//! InfluxDB 1.x line protocol encoding with exact escaping.
//!
//! Escaping, as InfluxDB 1.x reads it:
//! - measurement: `,` and space are backslash-escaped;
//! - tag keys, tag values, field keys: `,`, `=` and space are escaped;
//! - string field values: double-quoted, `"` and `\` escaped; any other
//!   character (newlines included) is kept as is.
//!
//! InfluxDB 1.x has no escape for a backslash in a name, so a name backslash
//! that would read as an escape (at the end, or before `,`, `=`, space or
//! `"`) cannot be written exactly; the encoder doubles it so the line stays
//! well formed. A line break in a name would end the line, so the encoder
//! writes it as a space. Every other string, any Unicode included, is
//! written exactly. Empty tag values are left out (InfluxDB rejects them);
//! non-finite floats are left out (line protocol cannot carry them).
//!
//! The tests check this encoder against InfluxData's own parser and builder
//! (the `influxdb-line-protocol` crate). That crate speaks the InfluxDB 3
//! dialect, where `\\` in a name is one backslash, no name may end in one
//! and an unescaped tab ends a name; for those names the oracle is InfluxDB
//! 1.x itself (`tests/line_protocol.rs`). The builder is not used in production for
//! the same reason: it escapes every backslash, which 1.x would keep doubled.

use std::fmt::Write as _;

/// One field value, as line protocol types it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Integer(i64),
    String(String),
    Boolean(bool),
}

/// `FieldValue::from` for each type a variant holds as is.
macro_rules! field_value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant(v)
            }
        })*
    };
}
field_value_from!(f64 => Float, i64 => Integer, bool => Boolean, String => String);

impl From<u64> for FieldValue {
    /// InfluxDB 1.x has no unsigned type by default; counters never reach
    /// 2^63, and if one did it saturates rather than wrapping negative.
    fn from(v: u64) -> Self {
        FieldValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::String(v.to_string())
    }
}

/// A point before it is encoded. Inputs build these without the common tags
/// and without a timestamp; the agent adds both.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Point {
    pub fn new(measurement: impl Into<String>) -> Self {
        Point {
            measurement: measurement.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            timestamp: 0,
        }
    }

    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    pub fn field(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// Adds a field only when the value is known.
    pub fn field_opt<V: Into<FieldValue>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    /// True when encoding would write at least one field (a point without
    /// fields is invalid line protocol).
    pub fn has_fields(&self) -> bool {
        self.fields
            .iter()
            .any(|(k, v)| !k.is_empty() && valid_value(v))
    }

    /// Appends the encoded line (without a trailing newline) to `out`.
    /// Returns false, appending nothing, when the point cannot be written
    /// (empty measurement or no valid field).
    pub fn encode_into(&self, out: &mut String) -> bool {
        if self.measurement.is_empty() || !self.has_fields() {
            return false;
        }
        escape_name(out, &self.measurement, MEASUREMENT_SPECIAL);
        // InfluxDB sorts tags itself, but sorted input is its fast path.
        let mut tags: Vec<&(String, String)> = self
            .tags
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        if !tags.windows(2).all(|w| w[0].0 < w[1].0) {
            tags.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            tags.dedup_by(|a, b| a.0 == b.0);
        }
        for (k, v) in tags {
            out.push(',');
            escape_name(out, k, KEY_SPECIAL);
            out.push('=');
            escape_name(out, v, KEY_SPECIAL);
        }
        let mut first = true;
        for (k, v) in &self.fields {
            if k.is_empty() || !valid_value(v) {
                continue;
            }
            out.push(if first { ' ' } else { ',' });
            first = false;
            escape_name(out, k, KEY_SPECIAL);
            out.push('=');
            match v {
                FieldValue::Float(f) => {
                    // Display of f64 is the shortest string that reads back
                    // as the same value, with no exponent.
                    let _ = write!(out, "{f}");
                }
                FieldValue::Integer(i) => {
                    let _ = write!(out, "{i}i");
                }
                FieldValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
                FieldValue::String(s) => {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
        }
        let _ = write!(out, " {}", self.timestamp);
        true
    }

    /// The encoded line, or `None` when the point cannot be written.
    pub fn encode(&self) -> Option<String> {
        let mut s = String::new();
        self.encode_into(&mut s).then_some(s)
    }
}

fn valid_value(v: &FieldValue) -> bool {
    !matches!(v, FieldValue::Float(f) if !f.is_finite())
}

const MEASUREMENT_SPECIAL: &[char] = &[',', ' '];
const KEY_SPECIAL: &[char] = &[',', '=', ' '];

/// Characters InfluxDB's unescape treats as escaped after a backslash.
fn unescapes(c: char) -> bool {
    matches!(c, ',' | '=' | ' ' | '"')
}

fn escape_name(out: &mut String, s: &str, special: &[char]) {
    // Nearly every name needs no escaping at all.
    if !s.contains(|c: char| matches!(c, '\\' | '\n' | '\r') || special.contains(&c)) {
        out.push_str(s);
        return;
    }
    let chars: Vec<char> = s
        .chars()
        .map(|c| if matches!(c, '\n' | '\r') { ' ' } else { c })
        .collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            // InfluxDB's scanner pairs backslashes from the left, so a run of
            // them that ends before a character it would read as escaped (or
            // at the end) is doubled to keep the line well formed.
            let run_end = chars[i..]
                .iter()
                .position(|&c| c != '\\')
                .map_or(chars.len(), |p| i + p);
            let double = chars
                .get(run_end)
                .is_none_or(|&n| unescapes(n) || special.contains(&n));
            for _ in i..run_end {
                out.push('\\');
                if double {
                    out.push('\\');
                }
            }
            i = run_end;
            continue;
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
        i += 1;
    }
}

/// True when `s` is written exactly by the encoder as a measurement, tag or
/// field key/value (see the module doc for the exceptions).
pub fn name_is_exact(s: &str) -> bool {
    if s.contains(['\n', '\r']) {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    chars.iter().enumerate().all(|(i, &c)| {
        c != '\\'
            || match chars.get(i + 1) {
                None => false,
                Some(&n) => n == '\\' || !unescapes(n),
            }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_escapes_exactly() {
        let p = Point::new("cpu load,x")
            .tag("host name", "a=b,c")
            .tag("empty", "")
            .field("value", 1.5)
            .field("n", 3i64)
            .field("s", "say \"hi\" \\o/")
            .field("ok", true);
        let mut p = p;
        p.timestamp = 42;
        assert_eq!(
            p.encode().unwrap(),
            r#"cpu\ load\,x,host\ name=a\=b\,c value=1.5,n=3i,s="say \"hi\" \\o/",ok=true 42"#
        );
    }

    #[test]
    fn drops_invalid_fields() {
        let p = Point::new("m").field("nan", f64::NAN);
        assert_eq!(p.encode(), None);
        let p = Point::new("m").field("nan", f64::INFINITY).field("a", 1i64);
        assert_eq!(p.encode().unwrap(), "m a=1i 0");
    }

    fn name() -> impl Strategy<Value = String> {
        // Any Unicode, weighted toward the characters that need escaping.
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec![',', '=', ' ', '"', '\\', 'a', 'é', '字', '#']),
                1 => any::<char>(),
            ],
            1..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    /// Names the oracle crate accepts wherever 1.x does: no tab or NUL
    /// (name boundaries for the crate only), no trailing backslash (the
    /// crate rejects one even when escaped) and no leading `#` (a comment
    /// line for both, so never a measurement).
    fn portable(s: &str) -> bool {
        !s.contains(['\t', '\0']) && !s.ends_with('\\') && !s.starts_with('#')
    }

    /// Names both dialects read back exactly: no backslash at all.
    fn exact_name() -> impl Strategy<Value = String> {
        name().prop_filter("not exact in both dialects", |s| {
            portable(s) && name_is_exact(s) && !s.contains('\\')
        })
    }

    fn value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(FieldValue::Float),
            any::<i64>().prop_map(FieldValue::Integer),
            any::<bool>().prop_map(FieldValue::Boolean),
            any::<String>().prop_map(FieldValue::String),
            name().prop_map(FieldValue::String),
        ]
    }

    /// Tags come sorted and unique (a `BTreeMap` orders by bytes), so the
    /// encoder writes them in the given order.
    fn point(names: BoxedStrategy<String>) -> impl Strategy<Value = Point> {
        (
            names.clone(),
            prop::collection::btree_map(names.clone(), names.clone(), 0..4),
            prop::collection::btree_map(names, value(), 1..4),
            any::<i64>(),
        )
            .prop_map(|(measurement, tags, fields, timestamp)| Point {
                measurement,
                tags: tags.into_iter().collect(),
                fields: fields.into_iter().collect(),
                timestamp,
            })
    }

    /// `line` as InfluxData's parser reads it, typed the way `Point` is.
    fn read_back(line: &str) -> Result<Point, String> {
        use influxdb_line_protocol::FieldValue as Theirs;
        let mut lines = influxdb_line_protocol::parse_lines(line);
        let parsed = lines.next().ok_or("no line")?.map_err(|e| e.to_string())?;
        if lines.next().is_some() {
            return Err("more than one line".into());
        }
        let fields = parsed.field_set.iter().map(|(k, v)| {
            let v = match v {
                Theirs::F64(f) => FieldValue::Float(*f),
                Theirs::I64(i) => FieldValue::Integer(*i),
                Theirs::Boolean(b) => FieldValue::Boolean(*b),
                Theirs::String(s) => FieldValue::String(s.to_string()),
                Theirs::U64(u) => return Err(format!("unsigned {u}u is never written")),
            };
            Ok((k.to_string(), v))
        });
        Ok(Point {
            measurement: parsed.series.measurement.to_string(),
            tags: parsed
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fields: fields.collect::<Result<_, _>>()?,
            timestamp: parsed.timestamp.ok_or("no timestamp")?,
        })
    }

    /// The same point through InfluxData's builder.
    fn build(p: &Point) -> String {
        use influxdb_line_protocol::LineProtocolBuilder;
        // The builder's typestate differs before and after the first field,
        // so each call site matches the value type itself.
        macro_rules! field {
            ($b:expr, $k:expr, $v:expr) => {
                match $v {
                    FieldValue::Float(f) => $b.field($k, *f),
                    FieldValue::Integer(i) => $b.field($k, *i),
                    FieldValue::Boolean(x) => $b.field($k, *x),
                    FieldValue::String(s) => $b.field($k, s.as_str()),
                }
            };
        }
        let b = LineProtocolBuilder::new().measurement(&p.measurement);
        let b = p.tags.iter().fold(b, |b, (k, v)| b.tag(k, v));
        let (first, rest) = p.fields.split_first().expect("a point has fields");
        let b = field!(b, &first.0, &first.1);
        let b = rest.iter().fold(b, |b, (k, v)| field!(b, k, v));
        let bytes = b.timestamp(p.timestamp).close_line().build();
        String::from_utf8(bytes).expect("the builder writes UTF-8")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every point both dialects can carry reads back exactly through
        /// InfluxData's parser: measurement, tags, typed fields, timestamp.
        #[test]
        fn round_trip(p in point(exact_name().boxed())) {
            let line = p.encode().unwrap();
            prop_assert_eq!(read_back(&line), Ok(p));
        }

        /// For the same points InfluxData's builder writes the same bytes.
        #[test]
        fn same_as_influxdata_builder(p in point(exact_name().boxed())) {
            let ours = p.encode().unwrap() + "\n";
            prop_assert_eq!(ours, build(&p));
        }

        /// Any point, backslashes and line breaks in names included, stays
        /// one well formed line with the same shape: nothing leaks between
        /// parts.
        #[test]
        fn never_breaks_the_line(
            p in point(name().prop_filter("portable", |s| portable(s)).boxed())
        ) {
            let line = p.encode().unwrap();
            let back = read_back(&line).map_err(TestCaseError::fail)?;
            prop_assert_eq!(back.tags.len(), p.tags.len());
            prop_assert_eq!(back.fields.len(), p.fields.len());
            prop_assert_eq!(back.timestamp, p.timestamp);
            for ((_, a), (_, b)) in back.fields.iter().zip(&p.fields) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
