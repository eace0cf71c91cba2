//! Which column types can be distribution keys: those with a default hash operator class
//! (Cloudberry's `cdb_default_distribution_opclass_for_type`; doc section 2.2).

use std::collections::HashMap;

use serde::Serialize;

use crate::names::QualName;

/// A column type as written in the dump, reduced to what decides hashability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeRef {
    /// Schema when written qualified (`pg_catalog` is dropped).
    pub schema: Option<String>,
    /// Base name, multi-word names joined by one space, typmods removed (`character varying`).
    pub name: String,
    pub array: bool,
}

/// User-defined types seen in the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserType {
    Enum,
    Range,
    /// Composite types pass Cloudberry's opclass test even with unhashable fields; never used.
    Composite,
    Domain(TypeRef),
    /// Base or shell types (extensions): no known hash opclass.
    Base,
}

pub type UserTypes = HashMap<QualName, UserType>;

/// First words of built-in types with a default hash opclass (PostgreSQL 14 catalogue plus
/// Cloudberry's bit/varbit).
const HASHABLE: &[&str] = &[
    "int2",
    "smallint",
    "int4",
    "integer",
    "int",
    "int8",
    "bigint",
    "float4",
    "real",
    "float8",
    "float",
    "double",
    "numeric",
    "decimal",
    "bool",
    "boolean",
    "char",
    "character",
    "bpchar",
    "varchar",
    "national",
    "nchar",
    "text",
    "name",
    "bytea",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "oid",
    "oidvector",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "uuid",
    "pg_lsn",
    "xid",
    "xid8",
    "cid",
    "tid",
    "aclitem",
    "jsonb",
    "bit",
    "varbit",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
    "regclass",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regtype",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regrole",
    "regcollation",
    "smallserial",
    "serial",
    "bigserial",
    "serial2",
    "serial4",
    "serial8",
];

/// Whether `t` can be a distribution key column.
pub fn is_hashable(t: &TypeRef, user: &UserTypes) -> bool {
    hashable_depth(t, user, 0)
}

fn hashable_depth(t: &TypeRef, user: &UserTypes, depth: u32) -> bool {
    if depth > 16 {
        return false;
    }
    let lookup = |schema: &str| user.get(&QualName::new(schema, t.name.clone()));
    let found = match &t.schema {
        Some(s) => lookup(s),
        None => {
            let first = t.name.split(' ').next().unwrap_or("");
            if HASHABLE.contains(&first) {
                return true;
            }
            lookup("public")
        }
    };
    match found {
        Some(UserType::Enum) | Some(UserType::Range) => true,
        Some(UserType::Domain(base)) => hashable_depth(base, user, depth + 1),
        Some(UserType::Composite) | Some(UserType::Base) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: Option<&str>, name: &str, array: bool) -> TypeRef {
        TypeRef {
            schema: schema.map(str::to_string),
            name: name.to_string(),
            array,
        }
    }

    #[test]
    fn builtin_and_user_types() {
        let mut user = UserTypes::new();
        user.insert(QualName::new("public", "mood"), UserType::Enum);
        user.insert(QualName::new("app", "addr"), UserType::Composite);
        user.insert(
            QualName::new("app", "pos"),
            UserType::Domain(t(None, "integer", false)),
        );
        user.insert(
            QualName::new("app", "geo"),
            UserType::Domain(t(None, "point", false)),
        );
        for ok in [
            "integer",
            "character varying",
            "timestamp with time zone",
            "jsonb",
            "bit varying",
            "double precision",
            "uuid",
        ] {
            assert!(is_hashable(&t(None, ok, false), &user), "{ok}");
        }
        for bad in [
            "json",
            "xml",
            "point",
            "money",
            "tsvector",
            "polygon",
            "box",
            "txid_snapshot",
        ] {
            assert!(!is_hashable(&t(None, bad, false), &user), "{bad}");
        }
        assert!(is_hashable(&t(Some("public"), "mood", false), &user));
        assert!(is_hashable(&t(None, "text", true), &user));
        assert!(!is_hashable(&t(Some("app"), "addr", false), &user));
        assert!(is_hashable(&t(Some("app"), "pos", false), &user));
        assert!(!is_hashable(&t(Some("app"), "geo", false), &user));
        assert!(!is_hashable(&t(Some("public"), "citext", false), &user));
    }
}
