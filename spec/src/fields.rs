//! Reading the fields of a signed object out of a parsed JSON object, with typed refusals.

use crate::error::Reject;
use crate::json::Value;

/// A JSON number whose int/float class is part of the signed bytes (`1` and `1.0` differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// The numeric value, whatever the class.
    pub fn value(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(x) => x,
        }
    }

    pub fn to_value(self) -> Value {
        match self {
            Number::Int(i) => Value::Int(i),
            Number::Float(x) => Value::Float(x),
        }
    }
}

impl Default for Number {
    fn default() -> Self {
        Number::Float(0.0)
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Number::Float(x)
    }
}

/// The members of an object being read as one kind of signed object; each field is moved
/// out as it is read, so reading allocates nothing new.
pub(crate) struct Fields {
    members: Vec<(String, Value)>,
    /// Where the next field is expected: payloads arrive with sorted keys and the readers
    /// ask in that order, so most lookups hit here at once.
    cursor: usize,
}

impl Fields {
    /// Refuses non-objects and any key outside `known` (the reference's dataclasses do too).
    pub fn new(value: Value, known: &[&str]) -> Result<Self, Reject> {
        let Value::Object(members) = value else {
            return Err(Reject::NotAnObject);
        };
        if let Some((key, _)) = members.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(Reject::UnknownField(key.clone()));
        }
        Ok(Fields { members, cursor: 0 })
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let i = match self.members.get(self.cursor) {
            Some((k, _)) if k == name => self.cursor,
            _ => self.members.iter().position(|(k, _)| k == name)?,
        };
        self.cursor = i + 1;
        // A taken field becomes an empty key, so it is neither found nor read twice.
        let (key, value) = &mut self.members[i];
        key.clear();
        Some(std::mem::replace(value, Value::Null))
    }

    fn required(&mut self, name: &'static str) -> Result<Value, Reject> {
        self.take(name).ok_or(Reject::MissingField(name))
    }

    fn wrong(name: &'static str, expected: &'static str, found: &Value) -> Reject {
        Reject::WrongType {
            field: name,
            expected,
            found: found.type_name(),
        }
    }

    pub fn string(&mut self, name: &'static str) -> Result<String, Reject> {
        match self.required(name)? {
            Value::Str(s) => Ok(s),
            other => Err(Self::wrong(name, "a string", &other)),
        }
    }

    pub fn string_or(&mut self, name: &'static str, default: &str) -> Result<String, Reject> {
        match self.take(name) {
            None => Ok(default.to_string()),
            Some(Value::Str(s)) => Ok(s),
            Some(other) => Err(Self::wrong(name, "a string", &other)),
        }
    }

    /// A field that is a string or `null`, and must be present.
    pub fn nullable_string(&mut self, name: &'static str) -> Result<Option<String>, Reject> {
        match self.required(name)? {
            Value::Null => Ok(None),
            Value::Str(s) => Ok(Some(s)),
            other => Err(Self::wrong(name, "a string or null", &other)),
        }
    }

    fn int_value(name: &'static str, value: Value) -> Result<i64, Reject> {
        match value {
            Value::Int(i) => Ok(i),
            Value::BigInt(_) => Err(Reject::IntOutOfRange(name)),
            other => Err(Self::wrong(name, "an integer", &other)),
        }
    }

    pub fn int(&mut self, name: &'static str) -> Result<i64, Reject> {
        Self::int_value(name, self.required(name)?)
    }

    pub fn int_or(&mut self, name: &'static str, default: i64) -> Result<i64, Reject> {
        match self.take(name) {
            None => Ok(default),
            Some(value) => Self::int_value(name, value),
        }
    }

    /// An int or a float, keeping which one it was.
    pub fn number(&mut self, name: &'static str) -> Result<Number, Reject> {
        match self.required(name)? {
            Value::Int(i) => Ok(Number::Int(i)),
            Value::Float(x) => Ok(Number::Float(x)),
            Value::BigInt(_) => Err(Reject::IntOutOfRange(name)),
            other => Err(Self::wrong(name, "a number", &other)),
        }
    }

    pub fn object(&mut self, name: &'static str) -> Result<Value, Reject> {
        match self.required(name)? {
            v @ Value::Object(_) => Ok(v),
            other => Err(Self::wrong(name, "an object", &other)),
        }
    }
}
