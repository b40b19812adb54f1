//! Mentions decide who gets `mentioned: true` on `/wait`, so they follow what a reader
//! sees as a mention: `@alias` of a current participant, outside inline code and fenced
//! blocks, not glued to a preceding word (`mail@host` is an address, not a mention).

/// Byte ranges of `text` that are code: fenced blocks and inline code spans.
fn code_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut prose_start = 0;
    let mut fence: Option<(u8, usize, usize)> = None; // (char, run length, block start)
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let indent = line.bytes().take_while(|&b| b == b' ').count();
        let body = &line.as_bytes()[indent.min(line.len())..];
        let run_char = body.first().copied().filter(|&c| c == b'`' || c == b'~');
        let run = run_char.map_or(0, |c| body.iter().take_while(|&&b| b == c).count());
        match fence {
            None if indent <= 3 && run >= 3 => {
                let c = run_char.unwrap_or(b'`');
                // An opening backtick fence may not contain backticks in its info string.
                if c == b'~' || !body[run..].contains(&b'`') {
                    ranges.extend(inline_spans(text, prose_start, line_start));
                    fence = Some((c, run, line_start));
                }
            }
            Some((c, n, start)) if indent <= 3 && run_char == Some(c) && run >= n => {
                let rest = &body[run..];
                if rest.iter().all(|b| b.is_ascii_whitespace()) {
                    ranges.push((start, pos));
                    fence = None;
                    prose_start = pos;
                }
            }
            _ => {}
        }
    }
    match fence {
        Some((_, _, start)) => ranges.push((start, text.len())),
        None => ranges.extend(inline_spans(text, prose_start, text.len())),
    }
    ranges
}

/// Inline code spans in `text[from..to]`: a run of N backticks up to the next run of
/// exactly N backticks. An unmatched run is literal text. Linear in the number of runs,
/// so hostile input with thousands of unmatched runs stays cheap.
fn inline_spans(text: &str, from: usize, to: usize) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = from;
    while i < to {
        if b[i] == b'`' {
            let s = i;
            while i < to && b[i] == b'`' {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    let mut by_len: std::collections::HashMap<usize, std::collections::VecDeque<usize>> =
        std::collections::HashMap::new();
    for (k, &(s, e)) in runs.iter().enumerate() {
        by_len.entry(e - s).or_default().push_back(k);
    }
    let mut spans = Vec::new();
    let mut k = 0;
    while k < runs.len() {
        let (s, e) = runs[k];
        let same = by_len.entry(e - s).or_default();
        while same.front().is_some_and(|&x| x <= k) {
            same.pop_front();
        }
        match same.front() {
            Some(&close) => {
                spans.push((s, runs[close].1));
                k = close + 1;
            }
            None => k += 1,
        }
    }
    spans
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `@word` outside code with no word character right before the `@`, lowercased,
/// trailing dashes trimmed, in order of first appearance, without repeats. The caller
/// keeps only current participants.
pub fn candidate_mentions(text: &str) -> Vec<String> {
    let code = code_ranges(text);
    let in_code = |at: usize| {
        let i = code.partition_point(|&(s, _)| s <= at);
        i > 0 && code[i - 1].1 > at
    };
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    for (at, c) in text.char_indices() {
        if c == '@' && !prev.is_some_and(|p| is_word(p) || p == '@') && !in_code(at) {
            let word: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(65)
                .collect::<String>()
                .to_ascii_lowercase();
            let word = word.trim_end_matches('-');
            if !word.is_empty() && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        prev = Some(c);
    }
    out
}

/// The mentions of `text` that name a participant for which `is_participant` holds.
pub fn resolve_mentions(text: &str, is_participant: impl Fn(&str) -> bool) -> Vec<String> {
    candidate_mentions(text)
        .into_iter()
        .filter(|w| is_participant(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Vec<String> {
        resolve_mentions(text, |a| ["operator", "reviewer", "bob-2"].contains(&a))
    }

    #[test]
    fn plain_mentions_in_order_without_repeats() {
        assert_eq!(
            m("@reviewer and @operator, @reviewer"),
            ["reviewer", "operator"]
        );
        assert_eq!(m("hi @Operator!"), ["operator"]);
        assert_eq!(m("@bob-2- and (@operator)"), ["bob-2", "operator"]);
        assert!(m("@nobody here").is_empty());
    }

    #[test]
    fn not_glued_to_a_word() {
        assert!(m("mail@operator").is_empty());
        assert!(m("x_@operator").is_empty());
        assert_eq!(m("é @operator"), ["operator"]);
        assert!(m("@@operator").is_empty());
    }

    #[test]
    fn not_inside_code() {
        let text = "@reviewer and @operator, not @nobody, not `@operator` nor\n```\n@reviewer\n```\nmail@operator";
        let mut got = m(text);
        got.sort();
        assert_eq!(got, ["operator", "reviewer"]);
        assert!(m("only `@operator` in code").is_empty());
        assert!(m("``a ` @operator``").is_empty());
        assert_eq!(m("unclosed `@operator"), ["operator"]);
        assert!(m("~~~\n@operator\n~~~").is_empty());
        assert!(
            m("```rust\n@operator\n").is_empty(),
            "an unclosed fence runs to the end"
        );
        assert_eq!(m("```\nx\n```\n@operator"), ["operator"]);
        assert_eq!(m("````\n```\n@reviewer\n````\n@operator"), ["operator"]);
    }
}
