//! Where a posted text comes from (SPEC §10): the words on the command line, a file
//! (`--file F`), or standard input (`--file -`, or `-` as the whole text). Long review
//! text with quotes and newlines then needs no `"$(cat file)"` and no shell quoting.

use std::io::Read;
use std::path::Path;

use super::output::CliError;

/// The largest text read from a file or standard input: well over any message cap (the
/// server refuses what is over its own, with the reason).
const READ_CAP: u64 = 1 << 20;

/// The text of a post: from `file` if given, else the words (`-` alone reads stdin).
pub fn post_text(words: &[String], file: Option<&Path>) -> Result<String, CliError> {
    let text = match (file, words) {
        (Some(_), [_, ..]) => {
            return Err(CliError::msg(
                "give the text either as words or with --file, not both",
            ));
        }
        // Like `"$(cat file)"`: the trailing newline of a file is not part of the text.
        (Some(p), []) if p == Path::new("-") => trim_newlines(read_stdin()?),
        (Some(p), []) => trim_newlines(read_file(p)?),
        (None, [one]) if one == "-" => trim_newlines(read_stdin()?),
        (None, []) => {
            return Err(CliError::msg(
                "no text: give it as words, with --file F, or on standard input with -",
            ));
        }
        (None, words) => words.join(" "),
    };
    if text.trim().is_empty() {
        return Err(CliError::msg("the text is empty"));
    }
    Ok(text)
}

fn trim_newlines(mut text: String) -> String {
    let keep = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(keep);
    text
}

fn read_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .take(READ_CAP)
        .read_to_string(&mut text)
        .map_err(|e| CliError::msg(format!("cannot read the text from standard input: {e}")))?;
    Ok(text)
}

fn read_file(path: &Path) -> Result<String, CliError> {
    let f = std::fs::File::open(path)
        .map_err(|e| CliError::msg(format!("cannot read {}: {e}", path.display())))?;
    let mut text = String::new();
    f.take(READ_CAP)
        .read_to_string(&mut text)
        .map_err(|e| CliError::msg(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}
