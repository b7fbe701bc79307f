//! Lenient version comparison for the `version` constraint operator.
//!
//! Node facts are rarely strict semantic versions: kernels report
//! `5.14.0-362.el9.x86_64`, operating systems `9.3` or `7`. A version here is
//! the leading one to three dot-separated numbers (an optional `v` prefix is
//! dropped, missing parts are zero, anything after the numbers is ignored),
//! so `5.10` is `5.10.0` and `5.14.0-362.el9` is `5.14.0`.
//!
//! A requirement is a comma-separated list of clauses that must all hold.
//! Clauses follow Nomad's (go-version) spelling and add Cargo's shorthands:
//!
//! | clause      | meaning                                               |
//! |-------------|-------------------------------------------------------|
//! | `5.4`, `= 5.4`, `== 5.4` | exactly 5.4.0                            |
//! | `!= 5.4`    | anything but 5.4.0                                    |
//! | `> 5.4`, `>= 5.4`, `< 6`, `<= 6` | ordered comparisons              |
//! | `~> 5.4`    | Nomad's pessimistic operator: `>= 5.4, < 6` (`~> 5.4.1`: `>= 5.4.1, < 5.5`) |
//! | `^5.4`      | Cargo's caret: `>= 5.4, < 6` (`^0.4`: `< 0.5`)       |
//! | `~5.4`      | Cargo's tilde: `>= 5.4, < 5.5`                        |

use std::cmp::Ordering;

/// A version reduced to its three numeric parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LenientVersion {
    major: u64,
    minor: u64,
    patch: u64,
}

impl LenientVersion {
    /// Reads the leading numeric parts of `text`; `None` when it does not
    /// start with a number.
    pub fn parse(text: &str) -> Option<LenientVersion> {
        Self::parse_with_parts(text).map(|(version, _)| version)
    }

    /// Like [`parse`](Self::parse), also returning how many parts were
    /// written (1 to 3), which the pessimistic operators need.
    fn parse_with_parts(text: &str) -> Option<(LenientVersion, usize)> {
        let trimmed = text.trim();
        let without_prefix = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
        let mut parts = [0_u64; 3];
        let mut num_parts = 0;
        for piece in without_prefix.split('.') {
            let digits_end = piece.find(|character: char| !character.is_ascii_digit()).unwrap_or(piece.len());
            if digits_end == 0 {
                break;
            }
            parts[num_parts] = piece[..digits_end].parse().ok()?;
            num_parts += 1;
            // A suffix such as `-362` or `rc1` ends the numeric prefix.
            if digits_end < piece.len() || num_parts == 3 {
                break;
            }
        }
        if num_parts == 0 {
            return None;
        }
        Some((LenientVersion { major: parts[0], minor: parts[1], patch: parts[2] }, num_parts))
    }

    const fn new(major: u64, minor: u64, patch: u64) -> LenientVersion {
        LenientVersion { major, minor, patch }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClauseOperator {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    /// A half-open range `[lower, upper)`, from `~>`, `^` or `~`.
    Range {
        upper: LenientVersion,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Clause {
    operator: ClauseOperator,
    version: LenientVersion,
}

impl Clause {
    fn matches(&self, candidate: LenientVersion) -> bool {
        let ordering = candidate.cmp(&self.version);
        match self.operator {
            ClauseOperator::Equal => ordering == Ordering::Equal,
            ClauseOperator::NotEqual => ordering != Ordering::Equal,
            ClauseOperator::Greater => ordering == Ordering::Greater,
            ClauseOperator::GreaterOrEqual => ordering != Ordering::Less,
            ClauseOperator::Less => ordering == Ordering::Less,
            ClauseOperator::LessOrEqual => ordering != Ordering::Greater,
            ClauseOperator::Range { upper } => ordering != Ordering::Less && candidate < upper,
        }
    }
}

/// A parsed version requirement such as `>= 5.4, < 6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRequirement {
    clauses: Vec<Clause>,
}

impl VersionRequirement {
    /// Parses a requirement; `None` when a clause is not understood (the
    /// constraint then matches no node).
    pub fn parse(text: &str) -> Option<VersionRequirement> {
        let mut clauses = Vec::new();
        for clause_text in text.split(',') {
            let trimmed = clause_text.trim();
            if trimmed.is_empty() {
                continue;
            }
            clauses.push(parse_clause(trimmed)?);
        }
        if clauses.is_empty() {
            return None;
        }
        Some(VersionRequirement { clauses })
    }

    /// Whether `attribute` (read leniently) satisfies every clause; an
    /// attribute that is not a version satisfies nothing.
    pub fn matches(&self, attribute: &str) -> bool {
        let Some(candidate) = LenientVersion::parse(attribute) else {
            return false;
        };
        self.clauses.iter().all(|clause| clause.matches(candidate))
    }
}

fn parse_clause(text: &str) -> Option<Clause> {
    // Longest spellings first, so that `>=` is not read as `>`.
    const SPELLINGS: [&str; 10] = ["~>", ">=", "<=", "==", "!=", ">", "<", "=", "^", "~"];
    let spelling = SPELLINGS.iter().find(|spelling| text.starts_with(**spelling)).copied().unwrap_or("");
    let (version, num_parts) = LenientVersion::parse_with_parts(&text[spelling.len()..])?;
    let operator = match spelling {
        "" | "=" | "==" => ClauseOperator::Equal,
        "!=" => ClauseOperator::NotEqual,
        ">" => ClauseOperator::Greater,
        ">=" => ClauseOperator::GreaterOrEqual,
        "<" => ClauseOperator::Less,
        "<=" => ClauseOperator::LessOrEqual,
        "~>" => ClauseOperator::Range { upper: pessimistic_upper_bound(version, num_parts) },
        "^" => ClauseOperator::Range { upper: caret_upper_bound(version, num_parts) },
        "~" => ClauseOperator::Range { upper: tilde_upper_bound(version, num_parts) },
        _ => return None,
    };
    Some(Clause { operator, version })
}

/// Nomad's `~>`: the last written part may grow, the one before it may not.
fn pessimistic_upper_bound(version: LenientVersion, num_parts: usize) -> LenientVersion {
    match num_parts {
        3 => LenientVersion::new(version.major, version.minor.saturating_add(1), 0),
        _ => LenientVersion::new(version.major.saturating_add(1), 0, 0),
    }
}

/// Cargo's `^`: the leftmost non-zero written part may not change.
fn caret_upper_bound(version: LenientVersion, num_parts: usize) -> LenientVersion {
    if version.major > 0 || num_parts == 1 {
        LenientVersion::new(version.major.saturating_add(1), 0, 0)
    } else if version.minor > 0 || num_parts == 2 {
        LenientVersion::new(0, version.minor.saturating_add(1), 0)
    } else {
        LenientVersion::new(0, 0, version.patch.saturating_add(1))
    }
}

/// Cargo's `~`: only the patch part may grow (the minor part too when only
/// the major part is written).
fn tilde_upper_bound(version: LenientVersion, num_parts: usize) -> LenientVersion {
    match num_parts {
        1 => LenientVersion::new(version.major.saturating_add(1), 0, 0),
        _ => LenientVersion::new(version.major, version.minor.saturating_add(1), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_leniently() {
        let cases = [
            ("5.10", Some(LenientVersion::new(5, 10, 0))),
            ("5", Some(LenientVersion::new(5, 0, 0))),
            ("v1.2.3", Some(LenientVersion::new(1, 2, 3))),
            ("5.14.0-362.el9.x86_64", Some(LenientVersion::new(5, 14, 0))),
            ("3.10.0.1160", Some(LenientVersion::new(3, 10, 0))),
            ("9.3rc1", Some(LenientVersion::new(9, 3, 0))),
            ("linux", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(LenientVersion::parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn requirements_match_like_nomad_and_cargo() {
        let cases = [
            (">= 5.4, < 6", "5.10", true),
            (">= 5.4, < 6", "6.0.1", false),
            (">= 5.4, < 6", "5.3.99", false),
            ("5.4", "5.4.0", true),
            ("= 5.4", "5.4.1", false),
            ("!= 5.4", "5.4.1", true),
            ("> 3.10", "4.18.0-513.el8", true),
            ("<= 3.10", "3.10.0-1160.el7", true),
            ("~> 5.4", "5.99", true),
            ("~> 5.4", "6.0", false),
            ("~> 5.4.1", "5.4.9", true),
            ("~> 5.4.1", "5.5.0", false),
            ("^1.2", "1.9.0", true),
            ("^1.2", "2.0.0", false),
            ("^0.4", "0.4.7", true),
            ("^0.4", "0.5.0", false),
            ("~1.2", "1.2.9", true),
            ("~1.2", "1.3.0", false),
            (">= 1", "not-a-version", false),
        ];
        for (requirement, attribute, expected) in cases {
            let parsed = VersionRequirement::parse(requirement).expect(requirement);
            assert_eq!(parsed.matches(attribute), expected, "{attribute:?} against {requirement:?}");
        }
    }

    #[test]
    fn unreadable_requirements_are_rejected() {
        for requirement in ["", ">= banana", "=> 1.0", ","] {
            assert_eq!(VersionRequirement::parse(requirement), None, "{requirement:?}");
        }
    }
}
