//! Property tests of the claim overlap rule (SPEC §13: "never miss an overlap"): for
//! random patterns and paths, whenever a path is matched by both patterns, the two are
//! reported overlapping. Matching is judged by a reference matcher written here,
//! independently of the product walk in `protocol::glob` (plain backtracking over
//! segments and characters), so the property checks the rule rather than restating it.

use agentgather::protocol::glob::Glob;
use proptest::prelude::*;

/// Does the segment pattern `p` match the segment `s` (`*` any run, `?` one char)?
fn seg_match(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => seg_match(&p[1..], s) || (!s.is_empty() && seg_match(p, &s[1..])),
        Some('?') => !s.is_empty() && seg_match(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && seg_match(&p[1..], &s[1..]),
    }
}

/// Does the pattern (split in segments) match exactly the path's segments?
fn exact(g: &[Vec<char>], p: &[Vec<char>]) -> bool {
    match g.first() {
        None => p.is_empty(),
        Some(s) if s.as_slice() == ['*', '*'] => {
            exact(&g[1..], p) || (!p.is_empty() && exact(g, &p[1..]))
        }
        Some(s) => !p.is_empty() && seg_match(s, &p[0]) && exact(&g[1..], &p[1..]),
    }
}

fn segs(s: &str) -> Vec<Vec<char>> {
    s.split('/')
        .filter(|x| !x.is_empty() && *x != ".")
        .map(|x| x.chars().collect())
        .collect()
}

/// The reference meaning: a pattern covers the paths it matches and everything under them.
fn covers(glob: &str, path: &str) -> bool {
    let g = segs(glob);
    let p = segs(path);
    (1..=p.len()).any(|k| exact(&g, &p[..k]))
}

fn glob_seg() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ab]{1,2}",
        2 => "[ab*?]{1,3}",
        1 => Just("**".to_string()),
        1 => Just("*".to_string()),
    ]
}

fn glob() -> impl Strategy<Value = String> {
    proptest::collection::vec(glob_seg(), 1..4).prop_map(|v| v.join("/"))
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec("[ab]{1,3}", 1..5).prop_map(|v| v.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn a_path_matched_by_both_means_they_overlap(a in glob(), b in glob(), p in path()) {
        let (ga, gb) = (Glob::parse(&a).unwrap(), Glob::parse(&b).unwrap());
        if covers(&a, &p) && covers(&b, &p) {
            prop_assert!(ga.overlaps(&gb), "{a} and {b} both cover {p}");
            prop_assert!(gb.overlaps(&ga), "{b} and {a} both cover {p}");
        }
    }

    #[test]
    fn matching_agrees_with_the_reference(a in glob(), p in path()) {
        let g = Glob::parse(&a).unwrap();
        prop_assert_eq!(g.matches(&p), covers(&a, &p), "{} on {}", a, p);
    }

    /// A path made to fit the first pattern (its wildcards filled in at random) and
    /// covered by the second: the two must overlap. Random paths rarely hit both
    /// patterns; these always hit the first.
    #[test]
    fn an_instance_of_one_covered_by_the_other_overlaps(a in glob(), b in glob(), fill in proptest::collection::vec("[ab]{0,2}", 16)) {
        let mut k = 0;
        let mut next = || { k += 1; fill[k % fill.len()].clone() };
        let inst: Vec<String> = a.split('/').filter_map(|s| {
            if s == "**" {
                let f = next();
                return (!f.is_empty()).then_some(f);
            }
            let seg: String = s.chars().map(|c| match c {
                '*' => next(),
                '?' => "a".to_string(),
                c => c.to_string(),
            }).collect();
            Some(if seg.is_empty() { "a".into() } else { seg })
        }).collect();
        prop_assume!(!inst.is_empty());
        let p = inst.join("/");
        prop_assume!(covers(&a, &p));
        if covers(&b, &p) {
            prop_assert!(Glob::parse(&a).unwrap().overlaps(&Glob::parse(&b).unwrap()), "{a} and {b} both cover {p}");
        }
    }

    /// The rule is symmetric.
    #[test]
    fn overlap_is_symmetric(a in glob(), b in glob()) {
        let (ga, gb) = (Glob::parse(&a).unwrap(), Glob::parse(&b).unwrap());
        prop_assert_eq!(ga.overlaps(&gb), gb.overlaps(&ga));
    }
}
