//! Integers as JSON Schema counts them: `940` and `940.0` are the same integer there (a
//! number whose fraction is zero), so a request field documented as an integer accepts both.
//! serde's own integer types refuse `940.0`; fields use these with `deserialize_with`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

struct Integer<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64> + TryFrom<i64>> Visitor<'de> for Integer<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer within {}", std::any::type_name::<T>())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        let refuse = || E::invalid_value(Unexpected::Float(v), &self);
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(refuse());
        }
        // Exact for every integer an f64 holds without rounding (|v| < 2^53 is all a JSON
        // number reliably carries); beyond that the value was rounded when it was written.
        if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else if (-9_223_372_036_854_775_808.0..0.0).contains(&v) {
            self.visit_i64(v as i64)
        } else {
            Err(refuse())
        }
    }
}

/// An integer (`940` or `940.0`).
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    deserializer.deserialize_any(Integer(PhantomData))
}

struct OptionalInteger<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64> + TryFrom<i64>> Visitor<'de> for OptionalInteger<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "null or an integer within {}",
            std::any::type_name::<T>()
        )
    }

    fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        integer(d).map(Some)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Option<T>, E> {
        Integer(PhantomData).visit_u64(v).map(Some)
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Option<T>, E> {
        Integer(PhantomData).visit_i64(v).map(Some)
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Option<T>, E> {
        Integer(PhantomData).visit_f64(v).map(Some)
    }
}

/// `null` or an integer (`940` or `940.0`).
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    deserializer.deserialize_any(OptionalInteger(PhantomData))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "super::integer")]
        n: u32,
        #[serde(default, deserialize_with = "super::optional_integer")]
        m: Option<i64>,
    }

    fn parse(text: &str) -> Result<Sample, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integral_floats_are_integers_and_nothing_else_is() {
        let s = parse(r#"{"n": 940.0, "m": -3.0}"#).unwrap();
        assert_eq!((s.n, s.m), (940, Some(-3)));
        let s = parse(r#"{"n": 7, "m": null}"#).unwrap();
        assert_eq!((s.n, s.m), (7, None));
        assert_eq!(parse(r#"{"n": 7}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": "7"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
