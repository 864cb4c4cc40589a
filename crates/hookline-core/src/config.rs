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
}
