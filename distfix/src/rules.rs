//! The distribution rules a command line gives (`--policy FILE`, `--default`, `--on-conflict`),
//! shared by cbdistfix, cbdump `--distribute` and cbrestore `--distribute`, and turned into a
//! [`Plan`] for a catalog in one place.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::catalog::Catalog;
use crate::names::QualName;
use crate::policy::{decide, DefaultRule, OnConflict, Options, Plan, PolicyError, PolicyFile};
use crate::stats::TableStats;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// TOML policy file: exact tables or patterns -> hash(col, ...) | random | replicated
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Tables without unique objects: first-hashable | random | replicated-below=ROWS
    #[arg(long = "default", value_name = "RULE")]
    pub default_rule: Option<DefaultRule>,
    /// Unique objects without a common hashable column: fail | replicated | demote-unique
    #[arg(long = "on-conflict", value_name = "MODE")]
    pub on_conflict: Option<OnConflict>,
}

/// What [`RuleArgs::plan_outcome`] found.
pub enum PlanOutcome {
    Planned(Plan),
    Conflicts { partial: Plan, message: String },
}

/// Why no plan came out of the rules.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("reading policy {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Policy {
        path: std::path::PathBuf,
        source: Box<PolicyError>,
    },
    #[error(transparent)]
    Decide(Box<PolicyError>),
    /// Tables in conflict under `--on-conflict fail`: every one of them, one per line.
    #[error("{0}")]
    Conflicts(String),
}

impl RuleArgs {
    /// Whether any rule was given (for commands where the rules only apply with --distribute).
    pub fn any(&self) -> bool {
        self.policy.is_some() || self.default_rule.is_some() || self.on_conflict.is_some()
    }

    /// The decisions for `catalog`, or, when tables conflict with `--on-conflict fail`, every
    /// conflict with the decisions for the rest (so a report can still be written); other errors
    /// name the policy file or the table.
    pub fn plan_outcome(
        &self,
        catalog: &Catalog,
        stats: &HashMap<QualName, TableStats>,
        force: bool,
    ) -> Result<PlanOutcome, RulesError> {
        let file = match &self.policy {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| RulesError::Read {
                    path: p.clone(),
                    source,
                })?;
                PolicyFile::parse(&text).map_err(|source| RulesError::Policy {
                    path: p.clone(),
                    source: Box::new(source),
                })?
            }
            None => PolicyFile::default(),
        };
        let opts = Options {
            default: self.default_rule,
            on_conflict: self.on_conflict,
            force,
        };
        match decide(catalog, &file, &opts, stats) {
            Ok(plan) => Ok(PlanOutcome::Planned(plan)),
            Err(e @ PolicyError::Conflicts { .. }) => {
                let message = e.to_string();
                let PolicyError::Conflicts { partial, .. } = e else {
                    unreachable!("matched above")
                };
                Ok(PlanOutcome::Conflicts {
                    partial: *partial,
                    message,
                })
            }
            Err(e) => Err(RulesError::Decide(Box::new(e))),
        }
    }

    /// The decisions for `catalog`; conflicts are an error naming every one of them.
    pub fn plan(
        &self,
        catalog: &Catalog,
        stats: &HashMap<QualName, TableStats>,
        force: bool,
    ) -> Result<Plan, RulesError> {
        match self.plan_outcome(catalog, stats, force)? {
            PlanOutcome::Planned(plan) => Ok(plan),
            PlanOutcome::Conflicts { message, .. } => Err(RulesError::Conflicts(message)),
        }
    }
}
