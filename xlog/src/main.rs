//! `chime-xlog`: reads Chime's compressed day files (`chime_YYYYMMDD.xlog`).
//!
//! `chime-xlog decode FILE [-o OUT]` prints the lines of every intact block as plain text (to
//! OUT when given, else to standard output) and a summary of any damaged regions on standard
//! error. With `--strict` the exit status is 2 when the file had damage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chime_xlog::{DamageKind, DecodeReport, XlogError, decode_file};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chime-xlog",
    version,
    about = "Decode Chime's compressed log files"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the lines of a day file as plain text.
    Decode {
        /// The `.xlog` file to read.
        file: PathBuf,
        /// Write the text here instead of standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Exit with status 2 when the file had damaged regions.
        #[arg(long)]
        strict: bool,
    },
}

fn kind_name(kind: DamageKind) -> &'static str {
    match kind {
        DamageKind::Truncated => "truncated",
        DamageKind::BadHeader => "bad header",
        DamageKind::BadBodyCrc => "body CRC mismatch",
        DamageKind::BadBody => "bad body",
    }
}

fn summary(report: &DecodeReport) -> String {
    let mut s = format!(
        "{} lines from {} blocks; {} damaged regions, {} bytes skipped\n",
        report.lines.len(),
        report.blocks,
        report.damaged_blocks.len(),
        report.skipped_bytes
    );
    for d in &report.damaged_blocks {
        let seq = d
            .seq
            .map_or(String::new(), |seq| format!(" (block seq {seq})"));
        s.push_str(&format!(
            "  at byte {}: {} bytes skipped, {}{seq}\n",
            d.offset,
            d.len,
            kind_name(d.kind)
        ));
    }
    s
}

fn decode(file: PathBuf, out: Option<PathBuf>) -> Result<DecodeReport, XlogError> {
    let report = decode_file(&file)?;
    let text = report.text();
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|source| XlogError::Io { path, source })?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|source| XlogError::Io {
                    path: PathBuf::from("<stdout>"),
                    source,
                })?;
        }
    }
    Ok(report)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Decode { file, out, strict } => match decode(file, out) {
            Ok(report) => {
                if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    eprint!("{}", summary(&report));
                    if strict {
                        ExitCode::from(2)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
            }
            Err(e) => {
                eprintln!("chime-xlog: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
