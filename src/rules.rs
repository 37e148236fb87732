//! The input rules, in one home: what a bucket name, a key, a value, a schema or table name
//! and a scan seed may be, and the error for a key that is not stored. The service checks a
//! client's bucket names and keys here before any store sees them; each store checks values
//! against its own limit here (it knows that limit, and `append` must check the size it
//! grows to); config and the admin tool check names here.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};

/// Keys are at most this long (bytes): the MySQL datatables' `k VARBINARY(255)`.
pub const MAX_KEY_SIZE: usize = 255;

/// Bucket names are at most this long: the `directory.bucket VARCHAR(64)` column.
pub const MAX_BUCKET_NAME: usize = 64;

/// Seeds are opaque tokens of the store; none it makes is longer than this.
pub const MAX_SEED_SIZE: usize = 4096;

/// Bucket names: 1 to 64 of `[A-Za-z0-9_-]`. They become file and table names, so nothing else
/// is ever accepted.
pub fn check_bucket_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_BUCKET_NAME {
        return Err(format!(
            "bucket name `{}` must be 1 to {MAX_BUCKET_NAME} characters",
            name.escape_debug()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "bucket name `{}` may hold only letters, digits, `_` and `-`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// A client's bucket name as text, checked.
pub fn bucket_name(bucket: &[u8]) -> Result<&str> {
    let name =
        std::str::from_utf8(bucket).map_err(|_| Error::invalid("bucket name is not UTF-8"))?;
    check_bucket_name(name).map_err(Error::invalid)?;
    Ok(name)
}

/// Keys are 1 to [`MAX_KEY_SIZE`] bytes.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key is empty"));
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::invalid(format!(
            "key of {} bytes is longer than {MAX_KEY_SIZE} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// A value of `len` bytes fits a store whose limit is `max`.
pub fn check_value_size(len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::invalid(format!(
            "value of {len} bytes is larger than {max} bytes"
        )));
    }
    Ok(())
}

/// Schema and table names end up in SQL text (from the directory, `MYSQL_DIRECTORY_DB`,
/// `--database`), so they are held to letters, digits and `_`, at most 64.
pub fn is_sql_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// [`is_sql_name`] as an error naming what the name is for.
pub fn check_sql_name(what: &str, name: &str) -> Result<()> {
    if is_sql_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} `{}` must be 1 to 64 letters, digits and `_`",
            name.escape_debug()
        )))
    }
}

/// The error for a key that is not stored.
pub fn no_such_key(bucket: &str, key: &[u8]) -> Error {
    Error::new(
        ErrorKind::NoSuchKey,
        format!(
            "no key `{}` in bucket `{bucket}`",
            String::from_utf8_lossy(key)
        ),
    )
}

/// Scan seeds: a store's prefix, then the last key returned in lowercase hex, so that a seed
/// is valid UTF-8 (clients receive it as a Thrift `string`).
pub mod seed {
    use super::*;

    /// `prefix` followed by `key` in hex.
    pub fn encode(prefix: &str, key: &[u8]) -> Bytes {
        let mut s = String::with_capacity(prefix.len() + 2 * key.len());
        s.push_str(prefix);
        for b in key {
            let _ = write!(s, "{b:02x}");
        }
        Bytes::from(s)
    }

    /// The key of a seed's hex part, or `None` when it is not one a store made (odd length,
    /// not hex, longer than a key).
    pub fn decode_key(hex: &str) -> Option<Vec<u8>> {
        if hex.len() % 2 != 0 || hex.len() > 2 * MAX_KEY_SIZE {
            return None;
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("data").is_ok());
        assert!(check_bucket_name("a-b_C9").is_ok());
        for bad in [
            "",
            "data; DROP TABLE directory; --",
            "../x",
            "a b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(bucket_name(&[0xff]).is_err());
    }

    #[test]
    fn keys_and_values() {
        assert!(check_key(b"k").is_ok());
        assert!(check_key(&[b'k'; MAX_KEY_SIZE]).is_ok());
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'k'; MAX_KEY_SIZE + 1]).is_err());
        assert!(check_value_size(10, 10).is_ok());
        let e = check_value_size(11, 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn sql_names() {
        assert!(is_sql_name("d_000000000001"));
        assert!(is_sql_name("thrudoc"));
        for bad in ["", "a-b", "a`b", "a.b", "a b", &"x".repeat(65)] {
            assert!(!is_sql_name(bad), "{bad}");
            assert!(check_sql_name("schema", bad).is_err());
        }
    }

    #[test]
    fn seeds_round_trip_and_refuse_what_no_store_made() {
        let key = [0u8, 0x7f, 0xff, b'k'];
        let s = seed::encode("k:", &key);
        assert_eq!(&s[..], b"k:007fff6b");
        let hex = std::str::from_utf8(&s[2..]).unwrap();
        assert_eq!(seed::decode_key(hex).unwrap(), key);
        for bad in ["0", "zz", "é0", &"00".repeat(MAX_KEY_SIZE + 1)] {
            assert_eq!(seed::decode_key(bad), None, "{bad}");
        }
        assert_eq!(seed::decode_key("").unwrap(), Vec::<u8>::new());
    }
}
