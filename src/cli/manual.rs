//! Shell completions and man pages, generated from the same clap definitions that parse
//! the command line, so they cannot drift from what the binary accepts. The unit test
//! here holds every option and positional to having a description: a flag a newcomer
//! sees in `--help`, a completion menu or the man page with no words is a guess.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::output::CliError;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh, fish, powershell or elvish.
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (agentgather.1, agentgather-room-start.1, …) into
    /// this directory instead of printing the main page.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `a.shell` on standard output.
pub fn completions(a: CompletionsArgs) -> Result<(), CliError> {
    let mut cmd = super::Cli::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(a.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

/// Prints the main man page (every subcommand listed), or writes a page per command.
pub fn man(a: ManArgs) -> Result<(), CliError> {
    let cmd = super::Cli::command();
    match a.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::msg(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| CliError::msg(format!("cannot write to {}: {e}", dir.display())))?;
            println!("Wrote the man pages to {}.", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| CliError::msg(format!("cannot write the man page: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, as `path: --flag` for the ones with no help.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let described = arg
                .get_help()
                .is_some_and(|h| !h.to_string().trim().is_empty())
                || arg
                    .get_long_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty());
            if !described {
                let name = arg
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| format!("<{id}>"));
                out.push(format!("{path}: {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub
                .get_about()
                .is_none_or(|a| a.to_string().trim().is_empty())
            {
                out.push(format!("{path} {}: (no about)", sub.get_name()));
            }
            undescribed(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_option_and_positional_has_a_description() {
        let mut missing = Vec::new();
        let cmd = super::super::Cli::command();
        undescribed(&cmd, "agentgather", &mut missing);
        assert!(
            missing.is_empty(),
            "{} arguments have no help text (add a /// line):\n  {}",
            missing.len(),
            missing.join("\n  ")
        );
    }

    #[test]
    fn the_json_flag_is_described_in_one_short_sentence() {
        let cmd = super::super::Cli::command();
        let json = cmd
            .get_arguments()
            .find(|a| a.get_id() == "json")
            .expect("--json is a global flag");
        let help = json.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(json.get_long_help().is_none(), "--json has no long help");
        assert_eq!(help.matches(". ").count(), 0, "one sentence: {help}");
        assert!(help.len() <= 60, "short: {help}");
    }
}
