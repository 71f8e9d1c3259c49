//! `likwid-access`, the command-line tool for administrators and users: one file per
//! subcommand, the argument and CPU-list parsing they share here. Errors are one line,
//! `likwid-access: ...`; exit code 2 for usage errors, 1 for failures.

mod check;
mod doctor;
mod likwid_installs;
mod policy;
mod read;
mod service;
mod sim;
mod write;

use crate::client::sessions::OwnDaemon;
use crate::error::AccessError;
use std::process::ExitCode;

/// Why a subcommand did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// The command ran and failed (exit 1).
    Failed(String),
}

struct Command {
    name: &'static str,
    summary: &'static str,
    help: &'static str,
    run: fn(&[String]) -> Result<(), Failure>,
}

const COMMANDS: &[Command] = &[
    Command { name: "read", summary: "read a register on one or more CPUs", help: read::HELP, run: read::run },
    Command { name: "write", summary: "write a register on one or more CPUs", help: write::HELP, run: write::run },
    Command { name: "check", summary: "check that the daemon can use each CPU", help: check::HELP, run: check::run },
    Command { name: "policy", summary: "print the effective register allowlist", help: policy::HELP, run: policy::run },
    Command { name: "doctor", summary: "check the installation and print fixes", help: doctor::HELP, run: doctor::run },
    Command { name: "sim", summary: "create a simulated machine", help: sim::HELP, run: sim::run },
    Command {
        name: "service",
        summary: "status and reset of the node's service",
        help: service::HELP,
        run: service::run,
    },
];

fn usage() -> String {
    let mut text = String::from(
        "usage: likwid-access COMMAND [ARGS]    (likwid-access COMMAND --help for details)\n\n\
         Hardware performance counter access through likwid-accessD.\n\n",
    );
    for c in COMMANDS {
        text.push_str(&format!("  {:<8} {}\n", c.name, c.summary));
    }
    text.push_str(
        "\nEnvironment: LIKWID_ACCESSD=PATH the daemon to use; LIKWID_ACCESS_ROOT=DIR a simulated\n\
         machine (see `likwid-access sim`).",
    );
    text
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => Err(Failure::Usage("no command; see likwid-access --help".into())),
        Some("--help" | "-h" | "help") => {
            println!("{}", usage());
            Ok(())
        }
        Some(name) => match COMMANDS.iter().find(|c| c.name == name) {
            Some(c) if args[1..].iter().any(|a| a == "--help" || a == "-h") => {
                println!("{}", c.help);
                Ok(())
            }
            Some(c) => (c.run)(&args[1..]),
            None => Err(Failure::Usage(format!("unknown command `{name}`; see likwid-access --help"))),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("likwid-access: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(why)) => {
            eprintln!("likwid-access: {why}");
            ExitCode::FAILURE
        }
    }
}

/// A command line split into positional arguments and `--option [VALUE]` pairs.
struct Parsed {
    positional: Vec<String>,
    options: Vec<(&'static str, Option<String>)>,
}

impl Parsed {
    fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| *n == name)
    }
}

/// Splits `args`: `valued` options take a value (`--cpu 0-3` or `--cpu=0-3`), `switches`
/// take none; at most `max_positional` other arguments.
fn parse_args(
    args: &[String],
    valued: &[&'static str],
    switches: &[&'static str],
    max_positional: usize,
) -> Result<Parsed, Failure> {
    let mut parsed = Parsed { positional: Vec::new(), options: Vec::new() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if arg.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if let Some(&name) = valued.iter().find(|&&n| n == flag) {
            let value = match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| Failure::Usage(format!("{name} needs a value")))?,
            };
            parsed.options.push((name, Some(value)));
        } else if let Some(&name) = switches.iter().find(|&&n| n == flag && inline.is_none()) {
            parsed.options.push((name, None));
        } else if arg.starts_with('-') && arg.len() > 1 && !is_number(arg) {
            return Err(Failure::Usage(format!("unknown option `{arg}`")));
        } else if parsed.positional.len() < max_positional {
            parsed.positional.push(arg.clone());
        } else {
            return Err(Failure::Usage(format!("unexpected argument `{arg}`")));
        }
    }
    Ok(parsed)
}

fn is_number(s: &str) -> bool {
    s.strip_prefix('-').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A number as msr-tools take it: `0x` hex or decimal.
fn parse_u64(what: &str, text: &str) -> Result<u64, Failure> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse::<u64>(),
    };
    parsed.map_err(|_| Failure::Usage(format!("{what} `{text}` is not a number (0x hex or decimal)")))
}

/// A register address: 32 bits.
fn parse_register(text: &str) -> Result<u32, Failure> {
    let value = parse_u64("register", text)?;
    u32::try_from(value).map_err(|_| Failure::Usage(format!("register `{text}` is wider than 32 bits")))
}

/// `0,2-5,7` → [0, 2, 3, 4, 5, 7]: what `--cpu` (and sim's `--cpu-list`) take; not empty.
fn parse_cpu_list(text: &str) -> Result<Vec<u32>, Failure> {
    match crate::policy::cpulist::parse(text) {
        Some(cpus) if !cpus.is_empty() => Ok(cpus),
        _ => Err(Failure::Usage(format!("CPU list `{text}`: want a list like 0,2-5"))),
    }
}

use crate::policy::cpulist::format as format_cpu_list;

/// The session's hardware threads as the numbers `--cpu` takes.
fn thread_numbers(session: &OwnDaemon) -> Vec<u32> {
    session.threads().iter().map(|t| t.0).collect()
}

/// A daemon session for read/write/check, with the library's launch and policy.
fn start_session() -> Result<OwnDaemon, Failure> {
    OwnDaemon::start().map_err(|e| Failure::Failed(e.message))
}

/// The CPUs `--cpu` names, parsed before anything starts (None: all).
fn cpu_option(p: &Parsed) -> Result<Option<Vec<u32>>, Failure> {
    p.value("--cpu").map(parse_cpu_list).transpose()
}

/// The CPUs from `cpu_option` (default: all), each of which must be on the machine.
fn selected_cpus(session: &OwnDaemon, wanted: Option<&[u32]>) -> Result<Vec<u32>, Failure> {
    let present = thread_numbers(session);
    let Some(cpus) = wanted else {
        return Ok(present);
    };
    if let Some(cpu) = cpus.iter().find(|c| present.binary_search(c).is_err()) {
        return Err(Failure::Failed(format!("cpu {cpu} is not on this machine (CPUs {})", format_cpu_list(&present))));
    }
    Ok(cpus.to_vec())
}

/// An access error as the tool's one line (`what` says which access).
fn access_failure(what: &str, e: AccessError) -> Failure {
    Failure::Failed(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        let cpus = parse_cpu_list("7,0-2,5,1").unwrap();
        assert_eq!(cpus, vec![0, 1, 2, 5, 7]);
        assert_eq!(format_cpu_list(&cpus), "0-2,5,7");
        for bad in ["", "a", "3-1", "1,,2", "0-99999999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_are_hex_with_0x_or_decimal() {
        assert_eq!(parse_register("0xC0010201").unwrap(), 0xC001_0201);
        assert_eq!(parse_register("16").unwrap(), 16);
        assert!(parse_register("0x100000000").is_err());
        assert!(parse_u64("value", "12ab").is_err());
        assert_eq!(parse_u64("value", "0xFFFFFFFFFFFFFFFF").unwrap(), u64::MAX);
    }

    #[test]
    fn options_take_values_inline_or_separately() {
        let args: Vec<String> = ["0x10", "--cpu=1", "--dec", "--cpu", "2"].iter().map(|s| s.to_string()).collect();
        let p = parse_args(&args, &["--cpu"], &["--dec"], 1).unwrap();
        assert_eq!(p.positional, vec!["0x10"]);
        assert_eq!(p.value("--cpu"), Some("2"));
        assert!(p.has("--dec"));
        assert!(matches!(parse_args(&args, &["--cpu"], &[], 1), Err(Failure::Usage(_))));
        assert!(matches!(parse_args(&args, &["--cpu"], &["--dec"], 0), Err(Failure::Usage(_))));
    }
}
