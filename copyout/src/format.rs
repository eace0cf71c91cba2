//! The COPY format options, turned into the option list of `COPY ... TO STDOUT WITH (...)`.
//!
//! We never re-implement COPY's output: the server formats every byte and we only carry it.
//! This module's job is to hand the server exactly the options the user gave, quoted, and to
//! know enough about the result (delimiter, quote, escape) to find row boundaries in it.

use cluster::quote;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Csv,
}

/// `FORCE_QUOTE`: a column list or every column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceQuote {
    All,
    Columns(Vec<String>),
}

/// Everything that shapes the bytes of the output.
#[derive(Debug, Clone)]
pub struct CopyFormat {
    pub format: Format,
    pub delimiter: Option<String>,
    pub null: Option<String>,
    pub header: bool,
    pub quote: Option<String>,
    pub escape: Option<String>,
    pub force_quote: Option<ForceQuote>,
    pub encoding: Option<String>,
}

/// Options that only make sense with CSV, rejected with text as the server would, but before
/// any connection is made.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0} is only available in CSV mode (--format csv)")]
    CsvOnly(&'static str),
    #[error("--{0} must be a single one-byte character, got {1:?}")]
    NotOneByte(&'static str, String),
    #[error("--header is not supported in text format by PostgreSQL before 15; use --format csv")]
    HeaderInText,
}

impl CopyFormat {
    pub fn validate(&self, server_version_num: i32) -> Result<(), FormatError> {
        if self.format == Format::Text {
            if self.quote.is_some() {
                return Err(FormatError::CsvOnly("--quote"));
            }
            if self.escape.is_some() {
                return Err(FormatError::CsvOnly("--escape"));
            }
            if self.force_quote.is_some() {
                return Err(FormatError::CsvOnly("--force-quote"));
            }
            if self.header && server_version_num < 150000 {
                return Err(FormatError::HeaderInText);
            }
        }
        for (name, value) in [
            ("delimiter", &self.delimiter),
            ("quote", &self.quote),
            ("escape", &self.escape),
        ] {
            if let Some(v) = value {
                if v.len() != 1 {
                    return Err(FormatError::NotOneByte(name, v.clone()));
                }
            }
        }
        Ok(())
    }

    /// `FORMAT csv, DELIMITER ',', ...` — only the options the user set, so the server's own
    /// defaults apply otherwise, exactly as with a hand-written COPY.
    pub fn sql_options(&self) -> String {
        let mut opts = vec![match self.format {
            Format::Text => "FORMAT text".to_string(),
            Format::Csv => "FORMAT csv".to_string(),
        }];
        if let Some(d) = &self.delimiter {
            opts.push(format!("DELIMITER {}", quote::literal(d)));
        }
        if let Some(n) = &self.null {
            opts.push(format!("NULL {}", quote::literal(n)));
        }
        if self.header {
            opts.push("HEADER true".into());
        }
        if let Some(q) = &self.quote {
            opts.push(format!("QUOTE {}", quote::literal(q)));
        }
        if let Some(e) = &self.escape {
            opts.push(format!("ESCAPE {}", quote::literal(e)));
        }
        match &self.force_quote {
            Some(ForceQuote::All) => opts.push("FORCE_QUOTE *".into()),
            Some(ForceQuote::Columns(cols)) => opts.push(format!(
                "FORCE_QUOTE ({})",
                cols.iter()
                    .map(|c| quote::ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => {}
        }
        if let Some(e) = &self.encoding {
            opts.push(format!("ENCODING {}", quote::literal(e)));
        }
        opts.join(", ")
    }

    /// The bytes that delimit rows in the output, for the row scanner.
    pub fn row_syntax(&self) -> pipeline::rows::RowSyntax {
        match self.format {
            Format::Text => pipeline::rows::RowSyntax::Text,
            Format::Csv => {
                let quote = self
                    .quote
                    .as_deref()
                    .and_then(|q| q.bytes().next())
                    .unwrap_or(b'"');
                let escape = self
                    .escape
                    .as_deref()
                    .and_then(|q| q.bytes().next())
                    .unwrap_or(quote);
                pipeline::rows::RowSyntax::Csv { quote, escape }
            }
        }
    }

    /// File name extension for this format.
    pub fn extension(&self) -> &'static str {
        match self.format {
            Format::Text => "txt",
            Format::Csv => "csv",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(format: Format) -> CopyFormat {
        CopyFormat {
            format,
            delimiter: None,
            null: None,
            header: false,
            quote: None,
            escape: None,
            force_quote: None,
            encoding: None,
        }
    }

    #[test]
    fn options_are_quoted() {
        let mut f = base(Format::Csv);
        f.delimiter = Some("'".into());
        f.null = Some("\\N".into());
        f.header = true;
        f.force_quote = Some(ForceQuote::Columns(vec!["A b".into()]));
        f.encoding = Some("LATIN1".into());
        assert_eq!(
            f.sql_options(),
            "FORMAT csv, DELIMITER '''', NULL E'\\\\N', HEADER true, FORCE_QUOTE (\"A b\"), ENCODING 'LATIN1'"
        );
        assert!(f.validate(150000).is_ok());
    }

    #[test]
    fn text_rejects_csv_options() {
        let mut f = base(Format::Text);
        f.quote = Some("'".into());
        assert!(f.validate(150000).is_err());
        let mut f = base(Format::Text);
        f.delimiter = Some("ab".into());
        assert!(f.validate(150000).is_err());
        let mut f = base(Format::Text);
        f.header = true;
        assert!(f.validate(150000).is_ok());
        assert!(f.validate(140000).is_err());
    }
}
