//! Human-friendly durations (`250ms`, `5s`, `2m`, `24h`) and sizes (`64KiB`, `1MiB`)
//! as newtypes validated while the TOML is parsed.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::str::FromStr;

/// A duration written as a number and a unit: `ms`, `s`, `m` or `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{s:?} has no unit: write e.g. \"{s}s\" or \"{s}ms\""))?;
        let (n, unit) = s.split_at(split);
        let n: u64 = n.parse().map_err(|_| {
            format!("{s:?} is not a duration like \"250ms\", \"5s\", \"2m\", \"24h\"")
        })?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            _ => {
                return Err(format!(
                    "{s:?} has unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        }
        .ok_or_else(|| format!("{s:?} is too long"))?;
        Ok(Self(std::time::Duration::from_millis(ms)))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

/// A size in bytes: an integer, or a string with a unit (`B`, `KiB`, `MiB`, `GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(split);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{s:?} is not a size like \"512KiB\" or \"1MiB\""))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "{s:?} has unknown unit {other:?} (use B, KiB, MiB or GiB)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, or a string like \"64KiB\" or \"1MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("250ms".parse::<Duration>().unwrap().0.as_millis(), 250);
        assert_eq!("24h".parse::<Duration>().unwrap().0.as_secs(), 86_400);
        assert!("5".parse::<Duration>().unwrap_err().contains("no unit"));
        assert!(
            "5d".parse::<Duration>()
                .unwrap_err()
                .contains("unknown unit")
        );
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!("64KiB".parse::<ByteSize>().unwrap().0, 65_536);
        assert_eq!("1MiB".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert!("1MB".parse::<ByteSize>().is_err());
    }
}
