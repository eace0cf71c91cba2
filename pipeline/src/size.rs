//! Sizes on the command line: `500M`, `2G`, `64k`, `1048576` (binary units, optional `B`/`iB`).

/// Why a size was refused; every message quotes the value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size {0:?}: use a number with an optional K, M, G or T")]
    Unit(String),
    #[error("invalid size {0:?}")]
    Number(String),
    #[error("invalid size {0:?}: must be greater than zero")]
    Zero(String),
    #[error("invalid size {0:?}: too large")]
    TooLarge(String),
}

/// Parses a size greater than zero, in bytes (usable as a clap `value_parser`).
pub fn bytes(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (num, mult) = match t.find(char::is_alphabetic) {
        Some(i) => (
            &t[..i],
            multiplier(&t[i..]).ok_or_else(|| SizeError::Unit(s.into()))?,
        ),
        None => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| SizeError::Number(s.into()))?;
    if n == 0 {
        return Err(SizeError::Zero(s.into()));
    }
    n.checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(s.into()))
}

/// The factor of a unit: K, M, G or T, each optionally followed by `B` or `iB`; `B` alone is 1.
fn multiplier(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    Some(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::{bytes, SizeError};

    #[test]
    fn units() {
        assert_eq!(bytes("1048576"), Ok(1 << 20));
        assert_eq!(bytes("64k"), Ok(64 << 10));
        assert_eq!(bytes("500MB"), Ok(500 << 20));
        assert_eq!(bytes("2GiB"), Ok(2 << 30));
        assert_eq!(bytes("7 B"), Ok(7));
        assert_eq!(bytes("0"), Err(SizeError::Zero("0".into())));
        assert!(bytes("12parsecs").is_err());
        assert!(bytes("99999999999T").is_err());
    }

    #[test]
    fn messages_quote_the_value() {
        let message = |s| bytes(s).unwrap_err().to_string();
        assert_eq!(
            message("12Q"),
            "invalid size \"12Q\": use a number with an optional K, M, G or T"
        );
        assert_eq!(message("1.5G"), "invalid size \"1.5G\"");
        assert_eq!(
            message("0"),
            "invalid size \"0\": must be greater than zero"
        );
        assert_eq!(
            message("99999999999T"),
            "invalid size \"99999999999T\": too large"
        );
    }
}
