//! The path patterns of claims (SPEC §13) and the rule that decides whether two of them
//! could ever name the same file. Claims are only useful if a collision is never missed,
//! so overlap is decided exactly on the pattern language rather than guessed from
//! prefixes: both patterns are read as sequences of path segments, and a product
//! walk over the two sequences (the classic wildcard-intersection recurrence, once over
//! segments with `**` as the star and once inside a segment with `*` as the star) asks
//! whether some path is accepted by both. The only approximation is on the safe side: a
//! segment pattern made only of `*` is taken to be able to match an empty segment, which
//! no real path has, so such a pair may be reported overlapping when it is not.
//!
//! A pattern names what it matches and everything under it: `src/web` covers
//! `src/web/room.js`, as a person claiming a directory means.

use std::fmt;

/// The longest pattern or path accepted, in characters.
pub const PATH_MAX: usize = 300;

/// How many table cells one request's overlap walks may fill (a few milliseconds). A
/// walk costs at most the product of the two patterns' lengths, and a claim may list 50
/// patterns of 300 characters, so a request comparing hostile patterns against many live
/// claims could otherwise hold the room for minutes. Past the budget a pair is reported
/// overlapping, which the contract allows ("when unsure"), never as disjoint.
pub const OVERLAP_BUDGET: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character of a segment.
    One,
    /// `*`: any run of characters inside one segment.
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**` as a whole segment: zero or more segments.
    Deep,
    Pat(Vec<Tok>),
}

/// A validated, normalized repo-relative pattern (`src/**/*.rs`, `docs`, `a?.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    segs: Vec<Seg>,
    /// The most cells a walk against this pattern fills per cell of the other's.
    cost: usize,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("a path must not be empty")]
    Empty,
    #[error("{0:?} is absolute; give a path relative to the repository root")]
    Absolute(String),
    #[error("{0:?} leaves the repository with `..`")]
    Parent(String),
    #[error("{0:?} holds a backslash or a control character; use `/` between directories")]
    BadChar(String),
    #[error("{0:?} is longer than {PATH_MAX} characters")]
    TooLong(String),
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Glob {
    /// Validates and normalizes a pattern: `./` prefixes, `.` segments, doubled and
    /// trailing slashes go; `..`, a leading `/` (or a drive like `C:`), backslashes and
    /// control characters are refused.
    pub fn parse(raw: &str) -> Result<Glob, GlobError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(GlobError::Empty);
        }
        if s.chars().count() > PATH_MAX {
            return Err(GlobError::TooLong(s.chars().take(40).collect()));
        }
        if s.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(GlobError::BadChar(s.to_string()));
        }
        let drive =
            s.len() >= 2 && s.as_bytes()[1] == b':' && s.as_bytes()[0].is_ascii_alphabetic();
        if s.starts_with('/') || s.starts_with('~') || drive {
            return Err(GlobError::Absolute(s.to_string()));
        }
        let mut parts = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(GlobError::Parent(s.to_string())),
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(GlobError::Empty);
        }
        let text = parts.join("/");
        let mut segs: Vec<Seg> = parts.iter().map(|p| seg_of(p)).collect();
        // What is under a match is covered too: a trailing `**` says so once, here.
        if segs.last() != Some(&Seg::Deep) {
            segs.push(Seg::Deep);
        }
        let cost = text.chars().count() + 2;
        Ok(Glob { text, segs, cost })
    }

    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some path could match both patterns (with everything under each).
    pub fn overlaps(&self, other: &Glob) -> bool {
        let mut unlimited = usize::MAX;
        self.overlaps_within(other, &mut unlimited)
    }

    /// [`Self::overlaps`], paying the walk's cost from `budget`; when the budget cannot
    /// pay it, the answer is "overlapping" (unsure), never "disjoint".
    pub fn overlaps_within(&self, other: &Glob, budget: &mut usize) -> bool {
        if !prefixes_agree(&self.segs, &other.segs) {
            return false;
        }
        let cost = self.cost.saturating_mul(other.cost);
        if cost > *budget {
            return true;
        }
        *budget -= cost;
        product(
            &self.segs,
            &other.segs,
            |s| matches!(s, Seg::Deep),
            seg_overlap,
        )
    }

    /// Whether `path` (a normalized repo-relative path, read literally) is covered.
    pub fn matches(&self, path: &str) -> bool {
        let lit: Vec<Seg> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(|p| Seg::Pat(p.chars().map(Tok::Lit).collect()))
            .collect();
        if lit.is_empty() {
            return false;
        }
        // The path names one file: nothing under it is added.
        product(&self.segs, &lit, |s| matches!(s, Seg::Deep), seg_overlap)
    }
}

fn seg_of(part: &str) -> Seg {
    if part == "**" {
        return Seg::Deep;
    }
    let mut toks = Vec::with_capacity(part.len());
    for c in part.chars() {
        match c {
            // `**` inside a segment is a plain `*`, as in gitignore.
            '*' if toks.last() == Some(&Tok::Star) => {}
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            c => toks.push(Tok::Lit(c)),
        }
    }
    Seg::Pat(toks)
}

/// A cheap early refusal: the literal segments before either pattern's first wildcard
/// must agree pairwise (a path matching both starts with both).
fn prefixes_agree(a: &[Seg], b: &[Seg]) -> bool {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Seg::Pat(p), Seg::Pat(q)) => match (literal(p), literal(q)) {
                (Some(l), Some(r)) if l != r => return false,
                (Some(_), Some(_)) => {}
                _ => return true,
            },
            _ => return true,
        }
    }
    true
}

fn literal(toks: &[Tok]) -> Option<String> {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn seg_overlap(a: &Seg, b: &Seg) -> bool {
    match (a, b) {
        (Seg::Pat(p), Seg::Pat(q)) => product(p, q, |t| *t == Tok::Star, tok_overlap),
        // `Deep` is the star of the segment walk and never reaches here.
        _ => true,
    }
}

fn tok_overlap(a: &Tok, b: &Tok) -> bool {
    match (a, b) {
        (Tok::Lit(x), Tok::Lit(y)) => x == y,
        _ => true,
    }
}

/// Whether some word is accepted by both `a` and `b`, where a star item matches any run
/// of units (including none) and any other item one unit that `unit` says both accept.
/// `reach[i][j]`: the suffixes `a[i..]` and `b[j..]` share a word. A star either matches
/// nothing (skip it) or takes the unit the other side's head produces (and stays); when
/// both heads are stars, one of them ends first, so skipping either covers every case.
fn product<T>(
    a: &[T],
    b: &[T],
    is_star: impl Fn(&T) -> bool,
    unit: impl Fn(&T, &T) -> bool,
) -> bool {
    let (n, m) = (a.len(), b.len());
    let w = m + 1;
    // Most pairs are short: their table lives on the stack.
    let mut small = [false; 256];
    let mut large = Vec::new();
    let reach: &mut [bool] = if (n + 1) * w <= small.len() {
        &mut small[..(n + 1) * w]
    } else {
        large.resize((n + 1) * w, false);
        &mut large
    };
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            let r = if i == n && j == m {
                true
            } else if i < n && is_star(&a[i]) {
                reach[(i + 1) * w + j] || (j < m && reach[i * w + j + 1])
            } else if j < m && is_star(&b[j]) {
                reach[i * w + j + 1] || (i < n && reach[(i + 1) * w + j])
            } else if i < n && j < m {
                unit(&a[i], &b[j]) && reach[(i + 1) * w + j + 1]
            } else {
                false
            };
            reach[i * w + j] = r;
        }
    }
    reach[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Glob {
        Glob::parse(s).unwrap()
    }

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(g("./src//web/").as_str(), "src/web");
        assert_eq!(g("a/./b").as_str(), "a/b");
        assert_eq!(Glob::parse(""), Err(GlobError::Empty));
        assert_eq!(Glob::parse(" ./ "), Err(GlobError::Empty));
        assert!(matches!(
            Glob::parse("/etc/passwd"),
            Err(GlobError::Absolute(_))
        ));
        assert!(matches!(Glob::parse("C:/x"), Err(GlobError::Absolute(_))));
        assert!(matches!(Glob::parse("~/x"), Err(GlobError::Absolute(_))));
        assert!(matches!(Glob::parse("a/../b"), Err(GlobError::Parent(_))));
        assert!(matches!(Glob::parse(".."), Err(GlobError::Parent(_))));
        assert!(matches!(Glob::parse("a\\b"), Err(GlobError::BadChar(_))));
        assert!(matches!(Glob::parse("a\nb"), Err(GlobError::BadChar(_))));
        assert!(matches!(
            Glob::parse(&"x".repeat(301)),
            Err(GlobError::TooLong(_))
        ));
    }

    #[test]
    fn overlaps_as_a_person_expects() {
        let yes = [
            ("src/**", "src/web/room.js"),
            ("src/web", "src/web/room.js"),
            ("src/*.rs", "src/main.rs"),
            ("**/*.rs", "src/a/b.rs"),
            ("src/*/mod.rs", "src/**"),
            ("a?c", "abc"),
            ("*.md", "README.*"),
            ("**", "anything"),
            ("src/**/x", "src/x"),
            ("a*b", "*c*"),
        ];
        for (x, y) in yes {
            assert!(g(x).overlaps(&g(y)), "{x} vs {y}");
            assert!(g(y).overlaps(&g(x)), "{y} vs {x}");
        }
        let no = [
            ("src/web/**", "src/server/**"),
            ("docs/a.md", "docs/b.md"),
            ("*.rs", "*.md"),
            ("src/*.rs", "tests/*.rs"),
            ("a?", "abc"),
            ("src/*/mod.rs", "src/x/y/mod.rs"),
        ];
        for (x, y) in no {
            assert!(!g(x).overlaps(&g(y)), "{x} vs {y}");
            assert!(!g(y).overlaps(&g(x)), "{y} vs {x}");
        }
    }

    #[test]
    fn an_exhausted_budget_reports_overlap_never_disjoint() {
        let stars = |end: char| format!("{}{end}", "*a".repeat(140));
        let (x, y) = (g(&stars('x')), g(&stars('y')));
        let mut plenty = usize::MAX;
        assert!(!x.overlaps_within(&y, &mut plenty), "exactly: disjoint");
        let mut little = 1000;
        assert!(x.overlaps_within(&y, &mut little), "unsure: overlapping");
        assert_eq!(little, 1000, "nothing spent on a walk not taken");
        // A pair the prefixes tell apart costs nothing.
        let mut none = 0;
        assert!(!g("src/a").overlaps_within(&g("docs/**"), &mut none));
    }

    #[test]
    fn matches_paths_and_what_is_under_them() {
        assert!(g("src/web").matches("src/web/room.js"));
        assert!(g("src/web").matches("src/web"));
        assert!(!g("src/web").matches("src/webby.js"));
        assert!(g("**/*.rs").matches("main.rs"));
        assert!(g("src/*.rs").matches("src/main.rs"));
        assert!(!g("src/*.rs").matches("src/a/main.rs"));
        assert!(!g("src/main.rs").matches("src"));
        // A path is read literally: its `*` is a character, not a wildcard.
        assert!(!g("a.rs").matches("*.rs"));
    }
}
