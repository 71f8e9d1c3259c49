//! `/etc/likwid-access/service.conf`: who may use the service, and how. Pure: text in, rules
//! out, and the decision for one peer. Loading the file (ownership checks, name look-ups) is
//! in `load`; everything else here is testable without a system.
//!
//! ```text
//! user  alice    read-write
//! group likwid   read-write  /etc/likwid-access/allow-likwid   # optional allowlist file
//! group monitor  read
//! default        none
//! cpu-scope on           # writes only on CPUs of the client's cgroup cpuset (default on)
//! reads own              # reads of other CPUs: `any` or `own` (default own)
//! ```
//! One rule a line, first match wins, `#` starts a comment. No rule matches: `none`. Root
//! (uid 0) always gets read-write and is the only administrator.

use std::path::PathBuf;

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    ReadWrite,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        match word {
            "none" => Some(Access::None),
            "read" => Some(Access::Read),
            "read-write" => Some(Access::ReadWrite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        }
    }
}

/// Whom a rule is about. Names are resolved to ids when the file is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub subject: Subject,
    pub access: Access,
    /// An msr-safe style allowlist that narrows the built-in policy for this rule's clients.
    pub allowlist: Option<PathBuf>,
    /// 1-based line, for messages.
    pub line: usize,
}

/// Whether reads of CPUs outside the client's cpuset are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    Any,
    Own,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub cpu_scope: bool,
    pub reads: Reads,
}

impl Default for Config {
    /// No file: only root may use the service.
    fn default() -> Config {
        Config { rules: Vec::new(), cpu_scope: true, reads: Reads::Own }
    }
}

/// A syntax error with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const ACCESS_WORDS: &str = "`none`, `read` or `read-write`";

fn access_of(word: Option<&str>, line: usize) -> Result<Access, ConfigError> {
    let word = word.ok_or_else(|| ConfigError { line, message: format!("missing access: want {ACCESS_WORDS}") })?;
    Access::parse(word)
        .ok_or_else(|| ConfigError { line, message: format!("unknown access `{word}`: want {ACCESS_WORDS}") })
}

fn allowlist_of(word: Option<&str>, line: usize) -> Result<Option<PathBuf>, ConfigError> {
    match word {
        None => Ok(None),
        Some(path) if path.starts_with('/') => Ok(Some(PathBuf::from(path))),
        Some(path) => Err(ConfigError { line, message: format!("allowlist `{path}` must be an absolute path") }),
    }
}

/// Parses the whole file; the first error stops it (a half-understood policy is not served).
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("");
        let words: Vec<&str> = content.split_whitespace().collect();
        let err = |message: String| ConfigError { line, message };
        match words.as_slice() {
            [] => {}
            ["user" | "group"] => return Err(err(format!("`{}` needs a name and an access", words[0]))),
            ["user" | "group", name, rest @ ..] => {
                if rest.len() > 2 {
                    return Err(err(format!("too many words after `{}`", rest[1])));
                }
                let subject =
                    if words[0] == "user" { Subject::User(name.to_string()) } else { Subject::Group(name.to_string()) };
                let access = access_of(rest.first().copied(), line)?;
                let allowlist = allowlist_of(rest.get(1).copied(), line)?;
                config.rules.push(Rule { subject, access, allowlist, line });
            }
            ["default", rest @ ..] => {
                if rest.len() > 2 {
                    return Err(err(format!("too many words after `{}`", rest[1])));
                }
                let access = access_of(rest.first().copied(), line)?;
                let allowlist = allowlist_of(rest.get(1).copied(), line)?;
                config.rules.push(Rule { subject: Subject::Default, access, allowlist, line });
            }
            ["cpu-scope", "on"] => config.cpu_scope = true,
            ["cpu-scope", "off"] => config.cpu_scope = false,
            ["reads", "any"] => config.reads = Reads::Any,
            ["reads", "own"] => config.reads = Reads::Own,
            ["cpu-scope", ..] => return Err(err("want `cpu-scope on` or `cpu-scope off`".into())),
            ["reads", ..] => return Err(err("want `reads any` or `reads own`".into())),
            [other, ..] => {
                return Err(err(format!("unknown keyword `{other}`: want user, group, default, cpu-scope or reads")))
            }
        }
    }
    Ok(config)
}

/// A connecting client as the kernel describes it (SO_PEERCRED, SO_PEERGROUPS), with its
/// user and group names resolved by the caller.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub uid: u32,
    pub user: Option<String>,
    /// Primary and supplementary groups: (gid, name).
    pub groups: Vec<(u32, Option<String>)>,
}

/// What a client gets: the access and the rule that decided (None: root, or no rule matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access: Access,
    pub rule: Option<Rule>,
}

/// A rule's name matches a name or the number of an id.
fn names(word: &str, id: u32, name: Option<&str>) -> bool {
    name == Some(word) || word.parse::<u32>().ok() == Some(id)
}

impl Config {
    /// Replaces user and group names by their ids (looked up once, when the file is loaded,
    /// so no connection waits on NSS). A name that does not resolve stays a name and never
    /// matches; the returned warnings say which.
    pub fn resolve(&mut self, user: impl Fn(&str) -> Option<u32>, group: impl Fn(&str) -> Option<u32>) -> Vec<String> {
        let mut warnings = Vec::new();
        for rule in &mut self.rules {
            let (word, found) = match &mut rule.subject {
                Subject::User(w) => {
                    let id = user(w);
                    (w, id)
                }
                Subject::Group(w) => {
                    let id = group(w);
                    (w, id)
                }
                Subject::Default => continue,
            };
            if word.parse::<u32>().is_ok() {
                continue;
            }
            match found {
                Some(id) => *word = id.to_string(),
                None => {
                    warnings.push(format!("line {}: no such user or group `{word}`; the rule never matches", rule.line))
                }
            }
        }
        warnings
    }

    /// The first matching rule decides; root always gets read-write; no match gets none.
    pub fn decide(&self, who: &Identity) -> Grant {
        if who.uid == 0 {
            return Grant { access: Access::ReadWrite, rule: None };
        }
        let matches = |rule: &Rule| match &rule.subject {
            Subject::User(word) => names(word, who.uid, who.user.as_deref()),
            Subject::Group(word) => who.groups.iter().any(|(gid, name)| names(word, *gid, name.as_deref())),
            Subject::Default => true,
        };
        match self.rules.iter().find(|r| matches(r)) {
            Some(rule) => Grant { access: rule.access, rule: Some(rule.clone()) },
            None => Grant { access: Access::None, rule: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, user: &str, groups: &[(u32, &str)]) -> Identity {
        Identity {
            uid,
            user: Some(user.into()),
            groups: groups.iter().map(|(g, n)| (*g, Some(n.to_string()))).collect(),
        }
    }

    const EXAMPLE: &str = "# site policy\n\
        user  alice    read-write\n\
        group likwid   read-write   # measuring users\n\
        group monitor  read /etc/likwid-access/monitor-allow\n\
        user  bob none\n\
        default        none\n";

    #[test]
    fn first_matching_rule_wins() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.decide(&who(1000, "alice", &[(100, "users")])).access, Access::ReadWrite);
        assert_eq!(c.decide(&who(1001, "carol", &[(100, "users"), (200, "likwid")])).access, Access::ReadWrite);
        let monitor = c.decide(&who(1002, "dave", &[(300, "monitor")]));
        assert_eq!(monitor.access, Access::Read);
        assert_eq!(monitor.rule.unwrap().allowlist, Some(PathBuf::from("/etc/likwid-access/monitor-allow")));
        // bob is in likwid, and the group rule comes first.
        assert_eq!(c.decide(&who(1003, "bob", &[(200, "likwid")])).access, Access::ReadWrite);
        assert_eq!(c.decide(&who(1003, "bob", &[(100, "users")])).access, Access::None);
        assert_eq!(c.decide(&who(1004, "eve", &[])).access, Access::None);
    }

    #[test]
    fn deny_by_default_and_root_administers() {
        let empty = parse("").unwrap();
        assert_eq!(empty.decide(&who(1000, "alice", &[(1000, "alice")])).access, Access::None);
        assert_eq!(Config::default().decide(&who(1000, "alice", &[])).access, Access::None);
        let c = parse("default none\n").unwrap();
        assert_eq!(c.decide(&who(0, "root", &[(0, "root")])).access, Access::ReadWrite);
        assert!(empty.cpu_scope && empty.reads == Reads::Own, "scope on and own reads by default");
    }

    #[test]
    fn numeric_ids_match_and_unresolved_names_do_not() {
        let c = parse("user 1234 read\ngroup 77 read-write\n").unwrap();
        assert_eq!(c.decide(&Identity { uid: 1234, user: None, groups: vec![] }).access, Access::Read);
        assert_eq!(c.decide(&Identity { uid: 5, user: None, groups: vec![(77, None)] }).access, Access::ReadWrite);
        let c = parse("user ghost read-write\n").unwrap();
        assert_eq!(c.decide(&Identity { uid: 5, user: None, groups: vec![] }).access, Access::None);
    }

    #[test]
    fn names_resolve_once_and_unknown_names_never_match() {
        let mut c = parse("user alice read\ngroup likwid read-write\nuser ghost read-write\n").unwrap();
        let warnings = c.resolve(|n| (n == "alice").then_some(1000), |n| (n == "likwid").then_some(200));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("line 3") && warnings[0].contains("ghost"), "{warnings:?}");
        let anon = |uid, groups: Vec<(u32, Option<String>)>| Identity { uid, user: None, groups };
        assert_eq!(c.decide(&anon(1000, vec![])).access, Access::Read);
        assert_eq!(c.decide(&anon(5, vec![(200, None)])).access, Access::ReadWrite);
        assert_eq!(c.decide(&anon(5, vec![])).access, Access::None);
    }

    #[test]
    fn settings_parse() {
        let c = parse("cpu-scope off\nreads any\n").unwrap();
        assert!(!c.cpu_scope);
        assert_eq!(c.reads, Reads::Any);
    }

    #[test]
    fn bad_lines_name_their_line_and_the_fix() {
        for (text, line, needle) in [
            ("user alice\n", 1, "missing access"),
            ("\n\ngroup x rw\n", 3, "unknown access `rw`"),
            ("default read relative/path\n", 1, "absolute path"),
            ("user a read /x extra\n", 1, "too many words"),
            ("usr alice read\n", 1, "unknown keyword `usr`"),
            ("cpu-scope maybe\n", 1, "cpu-scope on"),
            ("reads some\n", 1, "reads any"),
            ("user\n", 1, "needs a name"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let junk: String = (0..5000u32).filter_map(|i| char::from_u32(i % 0x3000)).collect();
        let _ = parse(&junk);
        let _ = parse("user \u{0} read\n#\n\t\tgroup\t\u{feff} read-write");
    }
}
