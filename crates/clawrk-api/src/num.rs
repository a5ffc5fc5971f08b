//! Integers in request bodies. JSON has one number type, and JSON Schema counts `500.0` as the
//! integer 500; so does clawrk: a number with no fractional part is read as that integer, anything
//! else (a fraction, or beyond `i64`) is refused with the field named.

use serde::de::{Error, Unexpected};
use serde::{Deserialize, Deserializer};

/// Reads an integer, also written with a zero fraction.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => n
            .as_i64()
            .ok_or_else(|| D::Error::custom("expected an integer")),
        n => match n.as_f64() {
            // Exactly representable and within i64 (2^63 itself is not).
            Some(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
                Ok(f as i64)
            }
            Some(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &"an integer")),
            None => Err(D::Error::custom("expected an integer")),
        },
    }
}

/// [`integer`] for an optional field (`null` is absent).
pub fn integer_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Int(#[serde(deserialize_with = "integer")] i64);
    Ok(Option::<Int>::deserialize(d)?.map(|Int(i)| i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(deserialize_with = "integer")]
        n: i64,
        #[serde(default, deserialize_with = "integer_option")]
        m: Option<i64>,
    }

    fn read(json: &str) -> Result<(i64, Option<i64>), String> {
        serde_json::from_str::<Body>(json)
            .map(|b| (b.n, b.m))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_integers_and_fractions_are_refused() {
        assert_eq!(read(r#"{"n": 500}"#), Ok((500, None)));
        assert_eq!(read(r#"{"n": 500.0, "m": -3e2}"#), Ok((500, Some(-300))));
        assert_eq!(read(r#"{"n": 1, "m": null}"#), Ok((1, None)));
        assert!(read(r#"{"n": 500.5}"#).is_err());
        assert!(read(r#"{"n": 1e19}"#).is_err());
        assert!(read(r#"{"n": 18446744073709551615}"#).is_err());
        assert!(read(r#"{"n": "500"}"#).is_err());
    }
}
