//! The distribution clause itself (doc section 1.1).

use std::fmt;

use serde::{Serialize, Serializer};

/// `DISTRIBUTED BY (keys)`, `DISTRIBUTED RANDOMLY` or `DISTRIBUTED REPLICATED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// Keys as SQL text (quoted where needed, an opclass may follow a column).
    Hash(Vec<String>),
    Random,
    Replicated,
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clause::Hash(keys) => write!(f, "DISTRIBUTED BY ({})", keys.join(", ")),
            Clause::Random => f.write_str("DISTRIBUTED RANDOMLY"),
            Clause::Replicated => f.write_str("DISTRIBUTED REPLICATED"),
        }
    }
}

impl Serialize for Clause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
