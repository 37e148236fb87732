//! Where values come from: the file's `KEY = VALUE` lines (`#` comments, blank lines), then the
//! `THRUDOC_<KEY>` environment variables on top, in one pass over each. Every value keeps its
//! origin, so an error can say where the bad value came from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use super::keys::{self, Key};
use crate::error::{Error, Result};

/// The prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "THRUDOC_";

/// A raw value with where it came from.
struct Raw {
    value: String,
    origin: &'static str,
}

/// The raw values of a file and an environment, with typed access whose errors name the key.
pub struct Values {
    raw: BTreeMap<String, Raw>,
}

impl Values {
    /// Parses file `text`, then applies the `THRUDOC_`-prefixed variables among `env`. Keys
    /// are upper case, whatever case they were written in.
    pub fn layer(text: &str, env: HashMap<String, String>) -> Result<Values> {
        let mut raw = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::config(format!(
                    "line {}: expected `KEY = VALUE`, found `{}`",
                    n + 1,
                    line.chars().take(60).collect::<String>()
                )));
            };
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(Error::config(format!(
                    "line {}: `{key}` is not a valid key",
                    n + 1
                )));
            }
            let origin = "the config file";
            let value = value.trim().to_string();
            raw.insert(key.to_ascii_uppercase(), Raw { value, origin });
        }
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                let origin = "the environment";
                raw.insert(key.to_ascii_uppercase(), Raw { value, origin });
            }
        }
        Ok(Values { raw })
    }

    /// Keys given that no [`Key`] declares.
    pub fn unknown(&self) -> impl Iterator<Item = &str> {
        self.raw
            .keys()
            .map(String::as_str)
            .filter(|k| keys::find(k).is_none())
    }

    /// The value given for `key`, or its default.
    fn get(&self, key: &Key) -> Option<&str> {
        match self.raw.get(key.name) {
            Some(r) => Some(r.value.as_str()),
            None => key.default,
        }
    }

    /// True when `key` was given (in the file or the environment), even as empty.
    pub fn given(&self, key: &Key) -> bool {
        self.raw.contains_key(key.name)
    }

    /// An error about `key`'s value, naming where it came from.
    pub fn bad(&self, key: &Key, why: impl fmt::Display) -> Error {
        let origin = self.raw.get(key.name).map_or("the defaults", |r| r.origin);
        Error::config(format!("{} (from {origin}): {why}", key.name))
    }

    /// The value, unless absent or empty.
    pub fn string(&self, key: &Key) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// The value, which must be there.
    pub fn required(&self, key: &Key) -> Result<String> {
        self.string(key).ok_or_else(|| self.bad(key, "is required"))
    }

    /// The value as a whole number within the key's bounds.
    pub fn number(&self, key: &Key) -> Result<u64> {
        let text = self.required(key)?;
        let n: u64 = text
            .parse()
            .map_err(|_| self.bad(key, format!("`{text}` is not a whole number")))?;
        let (min, max) = key.bounds.unwrap_or((0, u64::MAX));
        if n < min || n > max {
            return Err(self.bad(key, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    /// [`Values::number`] as a size or count.
    pub fn size(&self, key: &Key) -> Result<usize> {
        // Bounds are far below usize::MAX on every supported target.
        Ok(self.number(key)? as usize)
    }

    /// [`Values::number`] as milliseconds.
    pub fn millis(&self, key: &Key) -> Result<Duration> {
        Ok(Duration::from_millis(self.number(key)?))
    }

    /// [`Values::number`] as seconds.
    pub fn secs(&self, key: &Key) -> Result<Duration> {
        Ok(Duration::from_secs(self.number(key)?))
    }

    /// [`Values::number`] as a port (the key's bounds keep it in range).
    pub fn port(&self, key: &Key) -> Result<u16> {
        let n = self.number(key)?;
        u16::try_from(n).map_err(|_| self.bad(key, format!("{n} is not a port")))
    }
}
