//! JSON as the reference reads and writes it.
//!
//! The reference hashes and signs *parsed values*, re-printed by Python's `json.dumps`. Two things
//! of that matter for byte compatibility and are lost by general-purpose JSON libraries:
//! a number written without `.`/`e`/`E` is an integer and one with them is a float (`1` and
//! `1.0` hash differently), and floats are printed with Python's `repr` layout. So this module
//! keeps the int/float class of every number, keeps object key order (wire payloads of manifests,
//! events and profiles are not sorted), and prints both the canonical form (sorted keys) and the
//! wire form (keys as given) with the reference's ASCII escaping.

use std::fmt::Write as _;

/// Deepest nesting the parser accepts; deeper input is refused instead of exhausting the stack.
pub const MAX_DEPTH: usize = 128;

/// Longest integer literal accepted (Python 3.11 refuses to convert more than 4300 digits).
pub const MAX_INT_DIGITS: usize = 4300;

/// A parsed JSON value that remembers what the signer wrote: integer or float, and key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer literal that fits in 64 bits.
    Int(i64),
    /// An integer literal beyond 64 bits, as normalised decimal text (Python ints are unbounded).
    BigInt(String),
    /// A float literal, or one of the reference's non-JSON tokens `NaN`, `Infinity`, `-Infinity`.
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// Members in the order they were written; a repeated key keeps its first position and its
    /// last value, as a Python dict does.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The members of an object, or `None` for any other value.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Builds an object value from `(key, value)` pairs, keeping their order.
pub fn object<I, K>(members: I) -> Value
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    Value::Object(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Why a byte string is not JSON the reference would accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid json at byte {offset}: {what}")]
pub struct ParseError {
    pub offset: usize,
    pub what: &'static str,
}

/// Parses one JSON document (surrounding whitespace allowed, nothing after it).
///
/// Accepts what Python's `json.loads` accepts except lone UTF-16 surrogates, which a Rust string
/// cannot hold; refuses nesting deeper than [`MAX_DEPTH`] and objects of more than
/// [`MAX_MEMBERS`] members.
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
        offset: e.valid_up_to(),
        what: "not utf-8",
    })?;
    let mut parser = Parser { text, pos: 0 };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(parser.err("extra data after the value"));
    }
    Ok(value)
}

/// Members one object may have. Every object of the protocol has a few dozen at most; a
/// stranger's frame of a million distinct keys is refused once it passes this many, after
/// reading a few hundred kilobytes, instead of being built in full.
pub const MAX_MEMBERS: usize = 10_000;

/// Members of an object that are checked for a duplicate key by a plain scan; larger objects
/// get a hash index (every signed object of the protocol has fewer members than this).
const SCAN_MEMBERS: usize = 32;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.text[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            None => Err(self.err("expecting a value, found the end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => {
                if self.eat("-Infinity") {
                    return Ok(Value::Float(f64::NEG_INFINITY));
                }
                self.number()
            }
            Some(_) => {
                for (literal, value) in [
                    ("null", Value::Null),
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("NaN", Value::Float(f64::NAN)),
                    ("Infinity", Value::Float(f64::INFINITY)),
                ] {
                    if self.eat(literal) {
                        return Ok(value);
                    }
                }
                Err(self.err("expecting a value"))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        // Duplicate keys are found by a scan while the object is small and by a hash index
        // beyond that, so an object of many distinct keys costs linear time, not quadratic.
        let mut index: Option<std::collections::HashMap<String, usize>> = None;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expecting a property name in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expecting ':' delimiter"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            let earlier = match &index {
                Some(index) => index.get(&key).copied(),
                None => members.iter().position(|(k, _)| *k == key),
            };
            match earlier {
                Some(i) => members[i].1 = value,
                None => {
                    if members.len() == MAX_MEMBERS {
                        return Err(self.err("object has too many members"));
                    }
                    if let Some(index) = &mut index {
                        index.insert(key.clone(), members.len());
                    }
                    members.push((key, value));
                    if index.is_none() && members.len() > SCAN_MEMBERS {
                        index = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expecting ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expecting ',' or ']'")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut end = start;
        if bytes.get(end) == Some(&b'-') {
            end += 1;
        }
        match bytes.get(end) {
            Some(b'0') => end += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = bytes.get(end) {
                    end += 1;
                }
            }
            _ => return Err(self.err("expecting a value")),
        }
        let int_end = end;
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') && matches!(bytes.get(end + 1), Some(b'0'..=b'9')) {
            is_float = true;
            end += 1;
            while let Some(b'0'..=b'9') = bytes.get(end) {
                end += 1;
            }
        }
        if let Some(b'e' | b'E') = bytes.get(end) {
            let mut exp_end = end + 1;
            if let Some(b'+' | b'-') = bytes.get(exp_end) {
                exp_end += 1;
            }
            if matches!(bytes.get(exp_end), Some(b'0'..=b'9')) {
                is_float = true;
                while let Some(b'0'..=b'9') = bytes.get(exp_end) {
                    exp_end += 1;
                }
                end = exp_end;
            }
        }
        self.pos = end;
        let literal = &self.text[start..end];
        if is_float {
            // Rust's parse is correctly rounded, as CPython's float() is; overflow gives ±inf.
            let x: f64 = literal.parse().map_err(|_| self.err("bad float"))?;
            return Ok(Value::Float(x));
        }
        debug_assert_eq!(int_end, end);
        if literal.len() > MAX_INT_DIGITS {
            return Err(self.err("integer literal too long"));
        }
        match literal.parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => Ok(Value::BigInt(literal.to_string())),
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.err("bad \\u escape"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("bad \\u escape"));
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text.as_bytes()[self.pos..];
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or_else(|| self.err("unterminated string"))?;
            out.push_str(&self.text[self.pos..self.pos + run]);
            self.pos += run;
            match rest[run] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first) {
                                if !self.eat("\\u") {
                                    return Err(self.err("lone surrogate in string"));
                                }
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.err("lone surrogate in string"));
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&first) {
                                return Err(self.err("lone surrogate in string"));
                            } else {
                                first
                            };
                            out.push(
                                char::from_u32(code).ok_or_else(|| self.err("bad \\u escape"))?,
                            );
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                _ => return Err(self.err("control character in string")),
            }
        }
    }
}

/// Key order when printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// Keys sorted by code point at every level (the canonical form).
    Sorted,
    /// Keys in the order the object holds them (the wire form of manifests, events, profiles).
    AsGiven,
}

/// Python `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value, KeyOrder::Sorted);
    out
}

/// Python `json.dumps(v, separators=(",", ":"))`: compact, ASCII, keys as given.
pub fn to_wire(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value, KeyOrder::AsGiven);
    out
}

/// Appends `value` compactly with the reference's escaping and number layout.
pub fn write_value(out: &mut String, value: &Value, order: KeyOrder) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(text) => out.push_str(&normalise_int_literal(text)),
        Value::Float(x) => write_float(out, *x),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, order);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            let mut refs: Vec<&(String, Value)> = members.iter().collect();
            if order == KeyOrder::Sorted {
                // UTF-8 byte order equals code point order, which is what Python sorts by.
                refs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            for (i, (key, item)) in refs.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, key);
                out.push(':');
                write_value(out, item, order);
            }
            out.push('}');
        }
    }
}

/// `str(int(literal))` in Python: drops a leading `-` of zero.
fn normalise_int_literal(text: &str) -> String {
    let digits = text.trim_start_matches('-');
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return "0".to_string();
    }
    if text.starts_with('-') {
        format!("-{digits}")
    } else {
        digits.to_string()
    }
}

/// Appends a JSON string with `ensure_ascii` escaping: short escapes for `" \ \b \f \n \r \t`,
/// printable ASCII as is, everything else `\uXXXX` (lowercase hex, surrogate pairs above U+FFFF).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Printable ASCII other than `"` and `\` is copied as is, a run at a time.
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        if (0x80..0xc0).contains(&b) {
            // continuation byte of a character escaped at its first byte
            run_start = i + 1;
            continue;
        }
        out.push_str(&s[run_start..i]);
        run_start = i + 1;
        if b >= 0xc0 {
            let ch = s[i..].chars().next().expect("char boundary");
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
            continue;
        }
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// Python's `float.__repr__`, including the non-JSON tokens `json.dumps` emits for non-finite
/// values: shortest round-trip digits, fixed notation for decimal exponents -4..16 (with `.0`
/// when integral), otherwise `d.ddde±XX`.
pub fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // `{:e}` gives the shortest digit count that round-trips; when several digit strings of that
    // length round-trip, Python picks the one nearest the exact value, which is the correctly
    // rounded one that `{:.N$e}` prints.
    let shortest = format!("{:e}", x.abs());
    let significant = shortest
        .split_once('e')
        .map_or(1, |(m, _)| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{:.*e}", significant - 1, x.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exponent.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if x.is_sign_negative() {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.abs());
    }
}

/// [`write_float`] into a new string.
pub fn float_repr(x: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, x);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_int_float_distinction() {
        let v = parse(br#"{"a":1,"b":1.0,"c":1e2,"d":-0}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"a":1,"b":1.0,"c":100.0,"d":0}"#);
    }

    #[test]
    fn duplicate_key_keeps_first_position_last_value() {
        let v = parse(br#"{"b":1,"a":2,"b":3}"#).unwrap();
        assert_eq!(to_wire(&v), r#"{"b":3,"a":2}"#);
    }

    #[test]
    fn duplicate_keys_of_large_objects_behave_as_of_small_ones() {
        // past the scan threshold the hash index must give the same answer: first position,
        // last value, for a duplicate of an early key and of a late one
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str(r#""k3":"three","k99":"last","k100":100}"#);
        let members = parse(text.as_bytes())
            .unwrap()
            .as_object()
            .unwrap()
            .to_vec();
        assert_eq!(members.len(), 101);
        assert_eq!(members[3], ("k3".into(), Value::Str("three".into())));
        assert_eq!(members[99], ("k99".into(), Value::Str("last".into())));
        assert_eq!(members[100], ("k100".into(), Value::Int(100)));
    }

    #[test]
    fn objects_beyond_the_member_cap_are_refused() {
        let object = |n: usize| {
            let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            format!("{{{}}}", keys.join(","))
        };
        assert!(parse(object(MAX_MEMBERS).as_bytes()).is_ok());
        let err = parse(object(MAX_MEMBERS + 1).as_bytes()).unwrap_err();
        assert_eq!(err.what, "object has too many members");
    }

    #[test]
    fn escapes_like_python() {
        let v = Value::Str("é\u{7f}😀/\"\\\u{1}\u{2028}".into());
        assert_eq!(
            to_wire(&v),
            r#""\u00e9\u007f\ud83d\ude00/\"\\\u0001\u2028""#
        );
    }

    #[test]
    fn surrogate_pairs_decode_and_lone_ones_are_refused() {
        assert_eq!(
            parse(br#""\ud83d\ude00""#).unwrap(),
            Value::Str("😀".into())
        );
        assert!(parse(br#""\ud800""#).is_err());
        assert!(parse(br#""\udc00x""#).is_err());
    }

    #[test]
    fn non_json_tokens_and_big_ints() {
        let v = parse(b"[NaN,Infinity,-Infinity,123456789012345678901234567890]").unwrap();
        assert_eq!(
            to_wire(&v),
            "[NaN,Infinity,-Infinity,123456789012345678901234567890]"
        );
    }

    #[test]
    fn refuses_trailing_data_deep_nesting_and_control_chars() {
        assert!(parse(b"{} x").is_err());
        assert!(parse(&[b'['; 200]).is_err());
        assert!(parse(b"\"a\x01\"").is_err());
        assert!(parse(b"01").is_err());
        assert!(parse(b"1.").is_err());
    }

    #[test]
    fn float_layout() {
        for (x, s) in [
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (12345678.9, "12345678.9"),
        ] {
            assert_eq!(float_repr(x), s);
        }
    }
}
