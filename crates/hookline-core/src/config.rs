//! Reading settings from environment variables, as a pure function.
//!
//! Services load their settings with `Settings::from_vars(vars)`, where the
//! variables are any `(name, value)` pairs: `std::env::vars()` in `main`, a
//! literal list in tests (so tests never touch the process environment).
//! Every error names the variable at fault.

use std::{collections::HashMap, fmt::Display, str::FromStr, time::Duration};

/// A setting that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {detail}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with its value.
    pub detail: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &str, detail: impl Display) -> Self {
        Self { var: var.to_owned(), detail: detail.to_string() }
    }
}

/// A snapshot of environment variables. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: HashMap<String, String>,
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            map: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v): &(String, String)| !v.trim().is_empty())
                .collect(),
        }
    }
}

impl Vars {
    /// The raw value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|v| v.trim())
    }

    /// The value, or `default` when unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// The value parsed with `FromStr`, or `default` when unset.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new(name, format!("`{raw}` is not valid: {e}"))),
        }
    }

    /// A whole number of milliseconds (variables named `…_MS`).
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default_ms).map(Duration::from_millis)
    }

    /// A duration written with a unit (`30d`, `12h`, `90m`, `45s`,
    /// `250ms`) or as plain seconds (`3600`); see [`parse_duration`].
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse_duration(raw).map_err(|e| ConfigError::new(name, format!("`{raw}` is not valid: {e}"))),
        }
    }

    /// A positive number.
    pub fn positive<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + Display,
        T::Err: Display,
    {
        let value = self.parse(name, default)?;
        if value <= T::default() {
            return Err(ConfigError::new(name, format!("must be greater than zero, got {value}")));
        }
        Ok(value)
    }
}

/// The longest duration [`parse_duration`] accepts: a century, so that any
/// instant minus it is still a valid time.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// A duration setting that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    /// Not a whole number followed by an optional unit.
    #[error("expected a whole number with an optional unit (d, h, m, s, ms), e.g. `30d`, `12h`, `90m` or `3600`")]
    Malformed,
    /// A unit other than `d`, `h`, `m`, `s`, `ms`.
    #[error("unknown unit `{0}`: use d, h, m, s or ms (e.g. `30d`, `12h`, `90m`), or plain seconds")]
    UnknownUnit(String),
    /// More than [`MAX_DURATION`].
    #[error("longer than 36500 days")]
    TooLong,
}

/// Parses a duration: a whole number and a unit, `d` (days), `h`, `m`
/// (minutes), `s` or `ms`, or a plain number of seconds. `0` (in any unit)
/// is zero; surrounding spaces and a space before the unit are allowed.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(InvalidDuration::Malformed);
    }
    // Digits only, so the one failure left is a number too large for u64.
    let n: u64 = number.parse().map_err(|_| InvalidDuration::TooLong)?;
    let seconds = |factor: u64| n.checked_mul(factor).map(Duration::from_secs);
    let duration = match unit.trim_start() {
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        "ms" => Some(Duration::from_millis(n)),
        other => return Err(InvalidDuration::UnknownUnit(other.to_owned())),
    };
    match duration {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(InvalidDuration::TooLong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset and empty variables fall back to the default; set ones are parsed.
    #[test]
    fn defaults_and_values() {
        let vars: Vars = [("A", "5"), ("B", " "), ("C", "x")].into_iter().collect();
        assert_eq!(vars.parse("A", 1u32), Ok(5));
        assert_eq!(vars.parse("B", 1u32), Ok(1));
        assert_eq!(vars.parse("MISSING", 7u32), Ok(7));
        assert_eq!(vars.string("C", "d"), "x");
        assert_eq!(vars.millis("A", 0), Ok(Duration::from_millis(5)));
    }

    /// A bad value is an error that names the variable.
    #[test]
    fn errors_name_the_variable() {
        let vars: Vars = [("HOOKLINE_X", "abc"), ("HOOKLINE_Z", "0")].into_iter().collect();
        let e = vars.parse("HOOKLINE_X", 1u32).expect_err("not a number");
        assert_eq!(e.var, "HOOKLINE_X");
        assert!(e.to_string().starts_with("HOOKLINE_X: `abc` is not valid"));
        assert!(vars.positive("HOOKLINE_Z", 1u32).is_err());
    }

    fn check(text: &str, expected: Result<Duration, InvalidDuration>) {
        assert_eq!(parse_duration(text), expected, "{text:?}");
    }

    /// Durations take d, h, m, s or ms, or are plain seconds; zero is zero.
    #[test]
    fn durations_with_units() {
        let secs = |s: u64| Ok(Duration::from_secs(s));
        check("30d", secs(30 * 86_400));
        check("12h", secs(12 * 3600));
        check("90m", secs(5400));
        check("45s", secs(45));
        check("3600", secs(3600));
        check(" 7 d ", secs(7 * 86_400));
        check("250ms", Ok(Duration::from_millis(250)));
        check("0", secs(0));
        check("0d", secs(0));
        check("36500d", Ok(MAX_DURATION));
    }

    /// Anything else is refused with a reason.
    #[test]
    fn bad_durations() {
        check("", Err(InvalidDuration::Malformed));
        check("d", Err(InvalidDuration::Malformed));
        check("-1d", Err(InvalidDuration::Malformed));
        check("1.5h", Err(InvalidDuration::UnknownUnit(".5h".to_owned())));
        check("30 days", Err(InvalidDuration::UnknownUnit("days".to_owned())));
        check("1w", Err(InvalidDuration::UnknownUnit("w".to_owned())));
        check("36501d", Err(InvalidDuration::TooLong));
        check("99999999999999999999", Err(InvalidDuration::TooLong));
        check("999999999999999999d", Err(InvalidDuration::TooLong));
    }

    /// A bad duration setting names its variable and says what is accepted.
    #[test]
    fn duration_settings() {
        let vars: Vars = [("HOOKLINE_R", "2h"), ("HOOKLINE_BAD", "soon")].into_iter().collect();
        assert_eq!(vars.duration("HOOKLINE_R", Duration::ZERO), Ok(Duration::from_secs(7200)));
        assert_eq!(vars.duration("MISSING", Duration::from_secs(9)), Ok(Duration::from_secs(9)));
        let e = vars.duration("HOOKLINE_BAD", Duration::ZERO).expect_err("not a duration");
        assert_eq!(e.var, "HOOKLINE_BAD");
        assert!(e.to_string().contains("e.g. `30d`"), "{e}");
    }
}
