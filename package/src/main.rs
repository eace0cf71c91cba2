//! `cbtools-package`: man pages, shell completions and the Debian package of the cb* tools built
//! beside this binary (cargo's target/<profile>, wherever CARGO_TARGET_DIR puts it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cbtools-package",
    version,
    about = "Man pages, shell completions and the Debian package of the cb* tools built beside this binary"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Write man/man1/*.1 and bash, zsh and fish completions under DIR (laid out as /usr/share)
    Assets { dir: PathBuf },
    /// Build cbtools_VERSION_ARCH.deb from the binaries beside this one
    Deb {
        /// Directory the .deb is written to (default: target/<profile>/debian)
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
        /// dpkg-deb's compressor: xz (smallest), gzip (fastest), zstd, none
        #[arg(long, default_value = "xz")]
        compression: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cbtools-package: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin_dir = exe.parent().context("locating this binary's directory")?;
    let tools = package::tools::all(bin_dir)?;
    match cli.what {
        What::Assets { dir } => {
            let written = package::pages::write_all(&tools, &dir)?;
            eprintln!(
                "cbtools-package: {} files under {}",
                written.len(),
                dir.display()
            );
        }
        What::Deb {
            output,
            compression,
        } => {
            let opts = package::deb::DebOptions {
                bin_dir: bin_dir.to_path_buf(),
                out_dir: output.unwrap_or_else(|| bin_dir.join("debian")),
                compression,
            };
            let deb = package::deb::build(&tools, &opts)?;
            println!("{}", deb.display());
        }
    }
    Ok(())
}
