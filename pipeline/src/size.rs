//! Sizes on the command line: `500M`, `2G`, `64k`, `1048576` (binary units, optional `B`/`iB`).

/// Parses a size greater than zero.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => {
                    return Err(format!(
                        "invalid size {s:?}: use a number with an optional K, M, G or T"
                    ))
                }
            };
            (&t[..i], mult)
        }
        None => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}"))?;
    if n == 0 {
        return Err(format!("invalid size {s:?}: must be greater than zero"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn units() {
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("64k"), Ok(64 << 10));
        assert_eq!(parse("500MB"), Ok(500 << 20));
        assert_eq!(parse("2GiB"), Ok(2 << 30));
        assert!(parse("0").is_err());
        assert!(parse("12parsecs").is_err());
        assert!(parse("99999999999T").is_err());
    }
}
