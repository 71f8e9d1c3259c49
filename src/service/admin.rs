//! Mode 3: `status` and `reset [cpus=LIST] [uid=N] [job=ID]`, one line from root. Pure parse;
//! the connection code runs it on the core.

use super::core::Filter;
use super::scope::parse_cpu_list;

/// Longest command line.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    Reset(Filter),
}

pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("status") => match words.next() {
            None => Ok(Command::Status),
            Some(w) => Err(format!("status takes no argument (got `{w}`)")),
        },
        Some("reset") => {
            let mut filter = Filter::default();
            for word in words {
                let (key, value) =
                    word.split_once('=').ok_or_else(|| format!("`{word}`: want cpus=LIST, uid=N or job=ID"))?;
                match key {
                    "cpus" if filter.cpus.is_none() => {
                        let cpus = parse_cpu_list(value).filter(|c| !c.is_empty());
                        filter.cpus = Some(cpus.ok_or_else(|| format!("cpus=`{value}`: want a list like 0,2-5"))?);
                    }
                    "uid" if filter.uid.is_none() => {
                        filter.uid = Some(value.parse().map_err(|_| format!("uid=`{value}`: want a number"))?)
                    }
                    "job" if filter.job.is_none() => {
                        let ok = !value.is_empty()
                            && value.len() <= 64
                            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if !ok {
                            return Err(format!("job=`{value}`: want a Slurm job id"));
                        }
                        filter.job = Some(value.to_string());
                    }
                    "cpus" | "uid" | "job" => return Err(format!("{key}= given twice")),
                    _ => return Err(format!("unknown filter `{key}`: want cpus=, uid= or job=")),
                }
            }
            Ok(Command::Reset(filter))
        }
        Some(other) => Err(format!("unknown command `{other}`: want status or reset")),
        None => Err("empty command: want status or reset".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_filters_parse() {
        assert_eq!(parse("status\n"), Ok(Command::Status));
        assert_eq!(parse("reset"), Ok(Command::Reset(Filter::default())));
        let f = Filter { cpus: Some(vec![0, 1, 2, 5]), uid: Some(1000), job: Some("42".into()) };
        assert_eq!(parse("reset cpus=0-2,5 uid=1000 job=42"), Ok(Command::Reset(f)));
    }

    #[test]
    fn bad_commands_say_why() {
        for (line, needle) in [
            ("", "empty"),
            ("stop", "unknown command"),
            ("status now", "no argument"),
            ("reset cpus=", "cpus="),
            ("reset cpus=9-1", "cpus="),
            ("reset uid=root", "uid="),
            ("reset job=../x", "job="),
            ("reset uid=1 uid=2", "twice"),
            ("reset all", "want cpus="),
            ("reset pid=3", "unknown filter"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(needle), "{line:?}: {e}");
        }
    }
}
