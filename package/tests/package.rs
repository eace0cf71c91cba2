//! The packaging step end to end on the tools built beside it (`cargo test --workspace` builds
//! every cb* binary there): man pages and completions that carry each tool's real options, and a
//! .deb that holds all of them, declares the libraries the binaries link, and whose binaries
//! run. Installing the package is CI's job (`.ci/run`), not a test's: it writes to /usr.

use std::path::Path;
use std::process::Command;

fn package_tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cbtools-package"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("starting the command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn man_pages_and_completions_list_each_tools_options() {
    let dir = tempfile::tempdir().unwrap();
    run(package_tool().arg("assets").arg(dir.path()));
    // One option per tool that only that tool has, as roff and as each shell spells it.
    for (tool, option) in [
        ("cbdump", "exclude-table-data"),
        ("cbcopyout", "split-rows"),
        ("cbrestore", "verify-only"),
        ("cbdistfix", "in-place"),
        ("cbclone", "split-tables-larger-than"),
    ] {
        let man = read(&dir.path().join(format!("man/man1/{tool}.1")));
        assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
        assert!(man.contains(&format!(".TH {tool} 1")), "{man}");
        // roff escapes every dash: `\-\-exclude\-table\-data`.
        let roff = format!("--{option}").replace('-', "\\-");
        assert!(man.contains(&roff), "{tool}.1 lacks {roff}");
        // Each page describes the options (from the clap definition, not read back from --help).
        if tool != "cbdistfix" {
            assert!(
                man.contains("\\-\\-log\\-file"),
                "{tool}.1 lacks --log-file"
            );
            assert!(man.contains("\\-\\-progress"), "{tool}.1 lacks --progress");
        }
        let bash = read(
            &dir.path()
                .join(format!("bash-completion/completions/{tool}")),
        );
        assert!(bash.contains(&format!("--{option}")), "{tool} bash");
        assert!(bash.contains(&format!("complete -F _{tool}")), "{bash}");
        let zsh = read(&dir.path().join(format!("zsh/vendor-completions/_{tool}")));
        assert!(zsh.starts_with(&format!("#compdef {tool}")), "{zsh}");
        assert!(zsh.contains(&format!("--{option}")), "{tool} zsh");
        let fish = read(
            &dir.path()
                .join(format!("fish/vendor_completions.d/{tool}.fish")),
        );
        assert!(fish.contains(&format!("-l {option}")), "{tool} fish");
    }
}

#[test]
fn the_deb_holds_every_tool_with_its_pages_and_dependencies() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        println!("SKIPPED: dpkg-deb is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = run(package_tool()
        .args(["deb", "--compression", "none", "-o"])
        .arg(dir.path()));
    let deb = Path::new(deb.trim());
    assert_eq!(deb.parent(), Some(dir.path()));
    // The staging tree is gone: only the package is left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for tool in ["cbdump", "cbrestore", "cbcopyout", "cbdistfix", "cbclone"] {
        for path in [
            format!("./usr/bin/{tool}"),
            format!("./usr/share/man/man1/{tool}.1.gz"),
            format!("./usr/share/bash-completion/completions/{tool}"),
            format!("./usr/share/zsh/vendor-completions/_{tool}"),
            format!("./usr/share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            assert!(
                listing.lines().any(|l| l.ends_with(&path)),
                "{path} missing:\n{listing}"
            );
        }
    }
    assert!(listing.contains("root/root"), "{listing}");

    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Depends"));
    assert!(depends.contains("libssl3"), "{depends}");
    assert!(depends.contains("libc6"), "{depends}");

    // The packaged binaries run, and say which inflater they were built with.
    let root = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(root.path()));
    let version = run(Command::new(root.path().join("usr/bin/cbdump")).arg("--version"));
    assert!(
        version.starts_with(&format!("cbdump {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let linked: Vec<String> = ["cbdump", "cbrestore", "cbcopyout", "cbdistfix", "cbclone"]
        .iter()
        .map(|tool| {
            run(Command::new("readelf")
                .arg("-d")
                .arg(root.path().join("usr/bin").join(tool)))
        })
        .collect();
    assert_eq!(
        linked.iter().any(|l| l.contains("libisal.so")),
        depends.contains("libisal"),
        "libisal linked but not declared, or declared but not linked: {depends}"
    );
}
