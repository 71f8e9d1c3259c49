//! `likwid-access service status|reset`: the administrator's client of the node's service
//! (mode 3 of its socket): what sessions run, and ending them with their registers restored
//! (a Slurm epilog's job).

use super::{parse_args, Failure};
use crate::service::protocol::{Hello, SOCKET_PATH};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub const HELP: &str = "usage: likwid-access service status\n\
       likwid-access service reset [--cpu LIST] [--uid N] [--job ID]\n\
\n\
Talks to the node's likwid-accessD --service (as root). `status` prints one line per\n\
session: its id, uid, pid, the CPUs it programs and how many writes it made. `reset` ends\n\
the sessions that match every filter given (all sessions without one) and restores every\n\
register they changed; one line per session ended.\n\
\n\
  --cpu LIST    sessions programming one of these CPUs, e.g. 0,2-5\n\
  --uid N       sessions of this user id\n\
  --job ID      sessions of Slurm job ID (a cgroup path component job_ID)\n\
\n\
Exit status: 0, 1 when the service is not running or refuses, 2 for a usage error.";

/// Longest wait for the service's answer (a reset restores registers: still milliseconds).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The command line the service reads, from our arguments.
fn command_line(args: &[String]) -> Result<String, Failure> {
    let p = parse_args(args, &["--cpu", "--uid", "--job"], &[], 1)?;
    match p.positional.first().map(String::as_str) {
        Some("status") if p.options.is_empty() => Ok("status".into()),
        Some("status") => Err(Failure::Usage("status takes no options".into())),
        Some("reset") => {
            let mut line = String::from("reset");
            for (flag, key) in [("--cpu", "cpus"), ("--uid", "uid"), ("--job", "job")] {
                if let Some(value) = p.value(flag) {
                    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '=') {
                        return Err(Failure::Usage(format!("{flag} `{value}` is not a value")));
                    }
                    line.push_str(&format!(" {key}={value}"));
                }
            }
            Ok(line)
        }
        Some(other) => Err(Failure::Usage(format!("unknown service command `{other}`: want status or reset"))),
        None => Err(Failure::Usage("want `service status` or `service reset`".into())),
    }
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let line = command_line(args)?;
    let failed = |e: std::io::Error| Failure::Failed(format!("likwid-access service at {SOCKET_PATH}: {e}"));
    let mut stream = UnixStream::connect(SOCKET_PATH).map_err(|e| {
        Failure::Failed(format!("no likwid-access service at {SOCKET_PATH} ({e}): start it (likwid-accessD --service)"))
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(failed)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(failed)?;
    let mut request = Hello::Admin.encode().to_vec();
    request.extend_from_slice(line.as_bytes());
    request.push(b'\n');
    stream.write_all(&request).map_err(failed)?;
    let mut reply = String::new();
    stream.take(1 << 20).read_to_string(&mut reply).map_err(failed)?;
    let mut lines: Vec<&str> = reply.lines().collect();
    match lines.pop() {
        Some("ok") => {
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        Some(last) => {
            for l in lines {
                println!("{l}");
            }
            Err(Failure::Failed(last.strip_prefix("error: ").unwrap_or(last).to_string()))
        }
        None => Err(Failure::Failed(format!("the service at {SOCKET_PATH} closed without an answer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_become_the_service_line() {
        assert_eq!(command_line(&args(&["status"])).unwrap(), "status");
        assert_eq!(command_line(&args(&["reset"])).unwrap(), "reset");
        let line = command_line(&args(&["reset", "--job", "42", "--cpu=0-3", "--uid", "1000"])).unwrap();
        assert_eq!(line, "reset cpus=0-3 uid=1000 job=42");
        for bad in [&["status", "--uid", "1"][..], &["stop"], &[], &["reset", "--job", "a b"], &["reset", "--pid", "1"]]
        {
            assert!(matches!(command_line(&args(bad)), Err(Failure::Usage(_))), "{bad:?}");
        }
    }
}
