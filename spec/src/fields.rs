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

/// The members of an object being read as one kind of signed object.
pub(crate) struct Fields<'a> {
    members: &'a [(String, Value)],
}

impl<'a> Fields<'a> {
    /// Refuses non-objects and any key outside `known` (the reference's dataclasses do too).
    pub fn new(value: &'a Value, known: &[&str]) -> Result<Self, Reject> {
        let members = value.as_object().ok_or(Reject::NotAnObject)?;
        if let Some((key, _)) = members.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(Reject::UnknownField(key.clone()));
        }
        Ok(Fields { members })
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn required(&self, name: &'static str) -> Result<&'a Value, Reject> {
        self.get(name).ok_or(Reject::MissingField(name))
    }

    fn wrong(name: &'static str, expected: &'static str, found: &Value) -> Reject {
        Reject::WrongType {
            field: name,
            expected,
            found: found.type_name(),
        }
    }

    pub fn string(&self, name: &'static str) -> Result<String, Reject> {
        let v = self.required(name)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Self::wrong(name, "a string", v))
    }

    pub fn string_or(&self, name: &'static str, default: &str) -> Result<String, Reject> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(_) => self.string(name),
        }
    }

    /// A field that is a string or `null`, and must be present.
    pub fn nullable_string(&self, name: &'static str) -> Result<Option<String>, Reject> {
        match self.required(name)? {
            Value::Null => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            other => Err(Self::wrong(name, "a string or null", other)),
        }
    }

    pub fn int(&self, name: &'static str) -> Result<i64, Reject> {
        match self.required(name)? {
            Value::Int(i) => Ok(*i),
            Value::BigInt(_) => Err(Reject::IntOutOfRange(name)),
            other => Err(Self::wrong(name, "an integer", other)),
        }
    }

    pub fn int_or(&self, name: &'static str, default: i64) -> Result<i64, Reject> {
        match self.get(name) {
            None => Ok(default),
            Some(_) => self.int(name),
        }
    }

    /// An int or a float, keeping which one it was.
    pub fn number(&self, name: &'static str) -> Result<Number, Reject> {
        match self.required(name)? {
            Value::Int(i) => Ok(Number::Int(*i)),
            Value::Float(x) => Ok(Number::Float(*x)),
            Value::BigInt(_) => Err(Reject::IntOutOfRange(name)),
            other => Err(Self::wrong(name, "a number", other)),
        }
    }

    pub fn object(&self, name: &'static str) -> Result<Value, Reject> {
        let v = self.required(name)?;
        match v {
            Value::Object(_) => Ok(v.clone()),
            other => Err(Self::wrong(name, "an object", other)),
        }
    }
}
