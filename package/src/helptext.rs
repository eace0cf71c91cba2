//! FALLBACK for a tool whose clap definition is not yet reachable from its library crate (its
//! `Cli` struct still lives in `main.rs`): the built binary's `--help` text read back into a
//! `clap::Command`, so the man page and completions still list every option with its value
//! name and help. The real definition replaces this as soon as the crate exposes
//! `cli::command()`; `tools::all` says which tools still go through here.

use std::path::Path;
use std::process::Command as Process;

use clap::{Arg, ArgAction, Command};

use crate::PackageError;

/// The `clap::Command` that `binary --help` describes, named `name`.
pub fn command_from_binary(name: &'static str, binary: &Path) -> Result<Command, PackageError> {
    let out = Process::new(binary)
        .arg("--help")
        .env("COLUMNS", "200")
        .output()
        .map_err(|e| PackageError::Run(binary.display().to_string(), e))?;
    if !out.status.success() {
        return Err(PackageError::HelpFailed(binary.display().to_string()));
    }
    let version = Process::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.trim().strip_prefix(name).map(|v| v.trim().to_string()));
    let mut cmd = parse(name, &String::from_utf8_lossy(&out.stdout));
    if let Some(v) = version {
        cmd = cmd.version(v);
    }
    Ok(cmd)
}

/// One option or argument being read: its first line and the help lines that follow.
struct Pending {
    spec: String,
    help: Vec<String>,
    heading: Option<String>,
}

/// clap's help layout: the about text, `Usage:`, then sections (`Arguments:`, `Options:`, custom
/// headings) of entries indented by two spaces whose help follows on the same line after two
/// spaces or on deeper-indented lines; after the last section, the after-help text.
pub fn parse(name: &'static str, help: &str) -> Command {
    let mut about = Vec::new();
    let mut after = Vec::new();
    let mut args: Vec<Pending> = Vec::new();
    let mut heading: Option<String> = None;
    let mut in_sections = false;
    let mut current: Option<Pending> = None;
    for line in help.lines() {
        if line.starts_with("Usage:") {
            in_sections = true;
            continue;
        }
        if !in_sections {
            about.push(line.trim_end().to_string());
            continue;
        }
        let is_heading = !line.starts_with(' ') && line.trim_end().ends_with(':');
        if is_heading {
            args.extend(current.take());
            heading = Some(line.trim_end().trim_end_matches(':').to_string());
            continue;
        }
        if line.starts_with("  ") && !line.starts_with("   ") || line.starts_with("      --") {
            let entry = line.trim_start();
            if entry.starts_with('-') || entry.starts_with('<') || entry.starts_with('[') {
                args.extend(current.take());
                let (spec, rest) = match entry.find("  ") {
                    Some(i) => (&entry[..i], entry[i..].trim()),
                    None => (entry, ""),
                };
                current = Some(Pending {
                    spec: spec.to_string(),
                    help: [rest]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.to_string())
                        .collect(),
                    heading: heading.clone(),
                });
                continue;
            }
        }
        match (&mut current, line.starts_with(' ')) {
            (Some(p), true) => p.help.push(line.trim().to_string()),
            (Some(_), false) if line.trim().is_empty() => {}
            _ => {
                args.extend(current.take());
                if heading.is_some() || !line.trim().is_empty() {
                    heading = None;
                    after.push(line.trim_end().to_string());
                }
            }
        }
    }
    args.extend(current.take());

    let mut cmd = Command::new(name)
        .about(about.join("\n").trim().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true);
    let after = after.join("\n").trim().to_string();
    if !after.is_empty() {
        cmd = cmd.after_help(after);
    }
    let mut index = 1;
    for p in args {
        let Some(arg) = to_arg(&p, &mut index) else {
            continue;
        };
        let arg = match p.heading.as_deref() {
            Some("Options") | Some("Arguments") | None => arg,
            Some(h) => arg.help_heading(h.to_string()),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// `-d, --dbname <DBNAME>`, `--force`, `<PATH>...`, `[INPUT]` into an `Arg`.
fn to_arg(p: &Pending, index: &mut usize) -> Option<Arg> {
    let help = p
        .help
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut short = None;
    let mut long = None;
    let mut value = None;
    for word in p.spec.split([',', ' ']).filter(|w| !w.is_empty()) {
        if let Some(l) = word.strip_prefix("--") {
            long = Some(l.to_string());
        } else if let Some(s) = word.strip_prefix('-') {
            short = s.chars().next();
        } else {
            value = Some(word.to_string());
        }
    }
    let value = value.map(|v| {
        let many = v.ends_with("...");
        let name = v.trim_end_matches("...");
        let optional = name.starts_with('[');
        let name = name.trim_matches(['<', '>', '[', ']', '=']).to_string();
        (name, many, optional)
    });
    let id = long
        .clone()
        .or_else(|| short.map(String::from))
        .or_else(|| value.as_ref().map(|v| v.0.to_lowercase()))?;
    let mut arg = Arg::new(id).help(help);
    if let Some(s) = short {
        arg = arg.short(s);
    }
    match (&long, short, value) {
        (None, None, Some((name, many, optional))) => {
            arg = arg.index(*index).value_name(name).required(!optional);
            *index += 1;
            if many {
                arg = arg.num_args(1..).action(ArgAction::Append);
            }
        }
        (_, _, Some((name, many, _))) => {
            arg = arg.value_name(name).action(if many {
                ArgAction::Append
            } else {
                ArgAction::Set
            });
        }
        (_, _, None) => arg = arg.action(ArgAction::SetTrue),
    }
    if let Some(l) = long {
        arg = arg.long(l);
    }
    Some(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "Restore things\n\nUsage: cbx [OPTIONS] <PATH>...\n\nArguments:\n  <PATH>...\n          A file\n          or directory\n\nOptions:\n  -h, --host <HOSTNAME>\n          Database host\n\n      --if-exists\n          Use IF EXISTS\n\nGpbackup sets:\n      --jobs <N>  Workers\n  -?, --help  Print help\n\nExit status: 0 success.\n";

    #[test]
    fn reads_clap_long_help_back() {
        let cmd = parse("cbx", HELP);
        assert_eq!(cmd.get_about().unwrap().to_string(), "Restore things");
        let host = cmd.get_arguments().find(|a| a.get_id() == "host").unwrap();
        assert_eq!(host.get_short(), Some('h'));
        assert_eq!(host.get_value_names().unwrap()[0], "HOSTNAME");
        assert_eq!(host.get_help().unwrap().to_string(), "Database host");
        let path = cmd.get_arguments().find(|a| a.get_id() == "path").unwrap();
        assert!(path.is_positional());
        assert_eq!(path.get_help().unwrap().to_string(), "A file or directory");
        let jobs = cmd.get_arguments().find(|a| a.get_id() == "jobs").unwrap();
        assert_eq!(jobs.get_help_heading(), Some("Gpbackup sets"));
        assert_eq!(jobs.get_help().unwrap().to_string(), "Workers");
        let help = cmd.get_arguments().find(|a| a.get_id() == "help").unwrap();
        assert_eq!(help.get_short(), Some('?'));
        assert_eq!(
            cmd.get_after_help().unwrap().to_string(),
            "Exit status: 0 success."
        );
    }
}
