//! gpbackup metadata → plain PostgreSQL, through the one translation all inputs share
//! ([`distfix::translate`]): this adapter names each chunk by its toc entry and turns a chunk
//! with no PostgreSQL equivalent into [`Error::Untranslatable`].

pub use distfix::translate::{Action, ReportItem};

use crate::error::{Error, Result};
use crate::metadata::Statement;
use crate::toc::Section;

/// Translates metadata statements for a plain-PostgreSQL target, keeping a report.
#[derive(Debug, Default)]
pub struct Translator {
    inner: distfix::translate::Translator,
}

pub(crate) fn section_name(s: Section) -> &'static str {
    match s {
        Section::Global => "global",
        Section::Predata => "predata",
        Section::Postdata => "postdata",
        Section::Statistics => "statistics",
    }
}

impl Translator {
    pub fn new() -> Translator {
        Translator::default()
    }

    /// Everything skipped or edited so far.
    pub fn report(&self) -> &[ReportItem] {
        self.inner.report()
    }

    /// Translates one chunk. `Ok(None)` means nothing of it is left to run.
    pub fn translate(&mut self, stmt: &Statement) -> Result<Option<Vec<u8>>> {
        let e = &stmt.entry;
        let fqn = e.fqn();
        let object = distfix::translate::Object {
            section: section_name(stmt.section),
            objecttype: &e.objecttype,
            name: &fqn,
        };
        self.inner
            .translate(&stmt.sql, &object)
            .map_err(|u| Error::Untranslatable {
                objecttype: u.objecttype,
                name: u.name,
                reason: u.reason,
            })
    }
}
