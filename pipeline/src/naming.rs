//! File names for tables that are safe and unambiguous for any identifier.
//!
//! PostgreSQL names may hold spaces, quotes, slashes, dots, any unicode, and may differ only in
//! case. A name maps to a file name by keeping `[a-z0-9_-]` and percent-encoding every other
//! byte of its UTF-8 form — upper-case letters included, so `Foo` and `foo` stay distinct even on
//! case-insensitive file systems, and `.` stays free to separate schema from table. The mapping
//! is injective and reversible ([`decode`]). Names whose encoding would pass the common 255-byte
//! limit are cut and given a hash of the full name, which keeps them unique.

use sha2::{Digest, Sha256};

const MAX_COMPONENT: usize = 120;

/// `schema.table` as a file stem, e.g. `public.orders`, `%53ales.%4Frders%202024`.
pub fn table_stem(schema: &str, table: &str) -> String {
    format!("{}.{}", component(schema), component(table))
}

pub fn component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_COMPONENT {
        let mut cut = MAX_COMPONENT - 18;
        // Never split a %XX escape.
        while out.as_bytes()[cut - 1] == b'%' || (cut >= 2 && out.as_bytes()[cut - 2] == b'%') {
            cut -= 1;
        }
        let digest = Sha256::digest(name.as_bytes());
        out.truncate(cut);
        out.push('~');
        out.push_str(&hex::encode(&digest[..8]));
    }
    out
}

/// The name a component encodes, when it was not shortened.
pub fn decode(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else if bytes[i] == b'~' {
            return None;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_distinct_and_reversible() {
        let names = [
            "orders",
            "Orders",
            "ORDERS",
            "a b",
            "a/b",
            "a.b",
            "a%b",
            "quote\"d",
            "ünïcödé",
            "..",
            "",
        ];
        let stems: Vec<String> = names.iter().map(|n| component(n)).collect();
        for (n, s) in names.iter().zip(&stems) {
            assert!(!s.contains('/') && !s.contains('.'), "{s}");
            assert_eq!(decode(s).as_deref(), Some(*n));
        }
        let mut lower: Vec<String> = stems.iter().map(|s| s.to_lowercase()).collect();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), names.len(), "distinct even ignoring case");
        assert_eq!(table_stem("public", "Orders"), "public.%4Frders");
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let a = "Ä".repeat(60);
        let b = format!("{}x", "Ä".repeat(60));
        let (ca, cb) = (component(&a), component(&b));
        assert!(ca.len() <= MAX_COMPONENT && cb.len() <= MAX_COMPONENT);
        assert_ne!(ca, cb);
        assert_eq!(decode(&ca), None);
    }
}
