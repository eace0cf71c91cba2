//! The connection flags every `cb*` tool shares, named as in pg_dump.

/// `-h -p -U -d -w -W --role`. `-d` takes a database name, a `key=value` conninfo or a URI.
///
/// Because `-h` is the host (as in pg_dump), binaries disable clap's `-h` help flag and offer
/// `--help` only.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// Database server host or socket directory (PGHOST)
    #[arg(short = 'h', long = "host", value_name = "HOSTNAME")]
    pub host: Option<String>,

    /// Database server port (PGPORT)
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<String>,

    /// Connect as this database user (PGUSER)
    #[arg(short = 'U', long = "username", value_name = "NAME")]
    pub username: Option<String>,

    /// Database name, or a conninfo string / postgresql:// URI (PGDATABASE)
    #[arg(short = 'd', long = "dbname", value_name = "DBNAME")]
    pub dbname: Option<String>,

    /// Never prompt for a password
    #[arg(short = 'w', long = "no-password")]
    pub no_password: bool,

    /// Prompt for a password before connecting
    #[arg(short = 'W', long = "password")]
    pub password_prompt: bool,

    /// SET ROLE to this role after connecting
    #[arg(long = "role", value_name = "ROLENAME")]
    pub role: Option<String>,
}

/// A pg_dump/pg_restore flag a tool does not implement: accepted by the parser (hidden from
/// help) only to be refused with a message naming what to do instead, where clap alone would
/// suggest a look-alike (`--no-comments` -> "a similar argument exists: '--on-conflict'").
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub long: &'static str,
    pub short: Option<char>,
    /// Whether the flag takes a value (`--snapshot NAME`).
    pub takes_value: bool,
    /// Why, and the alternative: "cbdump writes COPY data; for INSERT statements use pg_dump --inserts".
    pub why: &'static str,
}

impl Refused {
    pub const fn switch(long: &'static str, why: &'static str) -> Refused {
        Refused {
            long,
            short: None,
            takes_value: false,
            why,
        }
    }

    pub const fn valued(long: &'static str, why: &'static str) -> Refused {
        Refused {
            long,
            short: None,
            takes_value: true,
            why,
        }
    }

    pub const fn short(self, short: char) -> Refused {
        Refused {
            short: Some(short),
            ..self
        }
    }
}

/// `cmd` with every refused flag added, hidden.
pub fn with_refused(mut cmd: clap::Command, refused: &[Refused]) -> clap::Command {
    for r in refused {
        let mut arg = clap::Arg::new(r.long)
            .long(r.long)
            .hide(true)
            .action(clap::ArgAction::Append);
        if let Some(s) = r.short {
            arg = arg.short(s);
        }
        arg = if r.takes_value {
            arg.num_args(1).value_name("VALUE")
        } else {
            arg.num_args(0).default_missing_value("")
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// The usage error for the first refused flag given, if any: `--inserts: cbdump writes ...`.
pub fn check_refused(matches: &clap::ArgMatches, refused: &[Refused]) -> Option<String> {
    refused.iter().find_map(|r| {
        matches
            .get_many::<String>(r.long)
            .is_some()
            .then(|| format!("--{}: {}", r.long, r.why))
    })
}

/// The usage error for the first refused flag on a raw command line (before `--`), looked for
/// before clap parses it: clap would otherwise report a missing required argument first
/// (`cbdistfix -h`), or a look-alike.
pub fn refused_in_args<S: AsRef<str>>(args: &[S], refused: &[Refused]) -> Option<String> {
    for arg in args.iter().map(AsRef::as_ref) {
        if arg == "--" {
            break;
        }
        let hit = refused.iter().find(|r| {
            let long = format!("--{}", r.long);
            let short = r.short.map(|c| format!("-{c}"));
            arg == long
                || arg.starts_with(&format!("{long}="))
                || short.as_deref() == Some(arg)
                || (r.takes_value && short.as_deref().is_some_and(|s| arg.starts_with(s)))
        });
        if let Some(r) = hit {
            return Some(format!("--{}: {}", r.long, r.why));
        }
    }
    None
}

/// A tool's command line as `T`, or exit 2 with clap's usage message: for a refused flag (with
/// its alternative), a parse error, or a combination `validate` rejects. `-?`/`--help` and
/// `--version` print and exit 0 as usual. `validate`'s error is shown by its `Display`, so each
/// tool keeps its own typed error.
pub fn parse<T: clap::FromArgMatches, E: std::fmt::Display>(
    cmd: clap::Command,
    refused: &[Refused],
    validate: impl FnOnce(&T) -> Result<(), E>,
) -> T {
    let mut cmd = with_refused(cmd, refused);
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let usage = |cmd: &mut clap::Command, msg: String| -> ! {
        cmd.error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    };
    if let Some(msg) = refused_in_args(&args, refused) {
        usage(&mut cmd, msg);
    }
    let matches = cmd.get_matches_mut();
    let parsed = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = validate(&parsed) {
        usage(&mut cmd, e.to_string());
    }
    parsed
}

/// Why a `-j`/`--jobs` value was refused; clap shows it after "invalid value 'X' for
/// '--jobs <N>': ".
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// `-j 0` would start no worker.
    #[error("must be at least 1")]
    Zero,
    #[error(transparent)]
    NotANumber(#[from] std::num::ParseIntError),
}

/// `-j N` (`value_parser = cluster::args::jobs`): a worker count of at least 1, refused while
/// parsing so that the usage message names the flag.
pub fn jobs(s: &str) -> Result<usize, JobsError> {
    match s.parse()? {
        0 => Err(JobsError::Zero),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &[Refused] = &[
        Refused::switch("inserts", "we write COPY data; use pg_dump --inserts"),
        Refused::valued("snapshot", "we take our own snapshot"),
        Refused::switch("no-unlogged-table-data", "not implemented").short('u'),
    ];

    fn cmd() -> clap::Command {
        with_refused(
            clap::Command::new("t").arg(clap::Arg::new("on-conflict").long("on-conflict")),
            REFUSED,
        )
    }

    #[test]
    fn refused_flags_parse_and_are_named_with_their_alternative() {
        let m = cmd().try_get_matches_from(["t", "--inserts"]).unwrap();
        assert_eq!(
            check_refused(&m, REFUSED).unwrap(),
            "--inserts: we write COPY data; use pg_dump --inserts"
        );
        let m = cmd()
            .try_get_matches_from(["t", "--snapshot", "00000003-1"])
            .unwrap();
        assert!(check_refused(&m, REFUSED)
            .unwrap()
            .starts_with("--snapshot: "));
        let m = cmd().try_get_matches_from(["t", "-u"]).unwrap();
        assert!(check_refused(&m, REFUSED).is_some());
        let m = cmd()
            .try_get_matches_from(["t", "--on-conflict", "x"])
            .unwrap();
        assert_eq!(check_refused(&m, REFUSED), None);
    }

    #[test]
    fn refused_flags_found_on_the_raw_command_line() {
        let found = |args: &[&str]| refused_in_args(args, REFUSED);
        assert!(found(&["t", "--inserts"])
            .unwrap()
            .starts_with("--inserts: "));
        assert!(found(&["t", "--snapshot=x"])
            .unwrap()
            .starts_with("--snapshot: "));
        assert!(found(&["t", "-u"]).is_some());
        assert_eq!(found(&["t", "--insertsx"]), None);
        assert_eq!(found(&["t", "--", "--inserts"]), None);
        assert_eq!(found(&["t", "--on-conflict", "x"]), None);
    }

    #[test]
    fn jobs_are_at_least_one() {
        assert_eq!(jobs("4").unwrap(), 4);
        assert_eq!(jobs("0").unwrap_err().to_string(), "must be at least 1");
        assert_eq!(
            jobs("x").unwrap_err().to_string(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn refused_flags_stay_out_of_help() {
        let help = cmd().render_help().to_string();
        assert!(!help.contains("inserts"), "{help}");
    }
}
