//! The one allowlist parser: text in msr-safe's format plus ranges to sorted, disjoint rules.
//! Pure and self-contained (std only): build.rs compiles this same file to parse the built-in
//! tables at build time, and the daemon uses it for a site's allowlist at start.

use std::fmt;

/// One allowlist line: registers `first..=last`, readable, writable under `write_mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub first: u32,
    pub last: u32,
    pub write_mask: u64,
}

/// A table line that does not parse, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn parse_hex(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn parse_address(word: &str) -> Option<u32> {
    parse_hex(word).and_then(|a| u32::try_from(a).ok())
}

/// The two words of a trimmed table line, None for any other number of words. Words are
/// split at white space as `str::split_whitespace` splits them, but an ASCII line (every
/// built-in table) is split by bytes: decoding it character by character made the daemon's
/// start-up parse cost about 2 000 instructions per table line (callgrind).
pub(crate) fn two_words(content: &str) -> Option<(&str, &str)> {
    if !content.is_ascii() {
        let mut words = content.split_whitespace();
        return match (words.next(), words.next(), words.next()) {
            (Some(a), Some(b), None) => Some((a, b)),
            _ => None,
        };
    }
    // char::is_whitespace on ASCII.
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let bytes = content.as_bytes();
    let end = bytes.iter().position(space)?;
    let start = end + bytes[end..].iter().position(|b| !space(b))?;
    if bytes[start..].iter().any(space) {
        return None;
    }
    Some((&content[..end], &content[start..]))
}

/// Parses an allowlist. Rules come back sorted by address; overlapping rules are an error,
/// since the table would then say two things about one register.
pub fn parse(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(content, _)| content).trim();
        if content.is_empty() {
            continue;
        }
        let err = |message: String| ParseError { line, message };
        let Some((addr, mask)) = two_words(content) else {
            return Err(err(format!("expected `0xADDR[-0xLAST] 0xWRITEMASK`, got `{content}`")));
        };
        let (first, last) = match addr.split_once('-') {
            Some((a, b)) => (parse_address(a), parse_address(b)),
            None => (parse_address(addr), parse_address(addr)),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(err(format!("`{addr}` is not a 32-bit hex address or range")));
        };
        if last < first {
            return Err(err(format!("range `{addr}` ends before it starts")));
        }
        let write_mask = parse_hex(mask).ok_or_else(|| err(format!("`{mask}` is not a 64-bit hex mask")))?;
        rules.push((line, Rule { first, last, write_mask }));
    }
    rules.sort_by_key(|(_, r)| r.first);
    for pair in rules.windows(2) {
        let ((_, a), (line, b)) = (pair[0], pair[1]);
        if b.first <= a.last {
            return Err(ParseError {
                line,
                message: format!("{:#x}-{:#x} overlaps {:#x}-{:#x}", b.first, b.last, a.first, a.last),
            });
        }
    }
    Ok(rules.into_iter().map(|(_, r)| r).collect())
}
