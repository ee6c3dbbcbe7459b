//! The words of the agent reader's errors and sentences, and nothing else. Not on the trust path (not
//! counted, TRUST.md section 4): `agent.rs` decides whether an error is returned or a sentence said
//! (any sentence in `outside` refuses the configuration, `config/measured.rs`); these only phrase them.

use super::{Arg, Origin};
use crate::reader::{ComposeError, Service, Value};
use crate::settings::Setting;

fn names<'a>(services: impl IntoIterator<Item = &'a Service>) -> String {
    services.into_iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

pub(super) fn no_agent(services: &[Service]) -> ComposeError {
    ComposeError::Shape(format!(
        "no service runs the replicatoor agent (none sets a REPLICATOOR_* variable or names replicatoor in its \
         image, entrypoint or command); services: {}",
        names(services)
    ))
}

pub(super) fn several_agents(candidates: &[&Service]) -> ComposeError {
    ComposeError::Shape(format!(
        "several services may be the replicatoor agent ({}): the agent's must be the only service that sets a \
         REPLICATOOR_* variable or names replicatoor",
        names(candidates.iter().copied())
    ))
}

/// The sentence for a `--config` file the compose names.
pub(super) fn config_file(origin: &Origin) -> String {
    let value = match &origin.value {
        Value::Literal { value } => format!("{value:?}"),
        Value::Operator { source } => source.clone(),
    };
    format!(
        "settings may also come from the TOML file named by {} ({value}), which this reader does not see",
        origin.place
    )
}

pub(super) fn env_files(files: &[String]) -> String {
    let files: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    format!(
        "env_file {}: any REPLICATOOR_* variable may come from these files, which the operator provides",
        files.join(", ")
    )
}

pub(super) fn any_flag(arg: &Arg) -> String {
    format!(
        "{} argument {:?} is substituted from the operator's environment: it can be any flag",
        arg.from, arg.written
    )
}

pub(super) fn any_program(arg: &Arg) -> String {
    format!(
        "{} argument {:?} is substituted from the operator's environment: it can be any program or flag",
        arg.from, arg.written
    )
}

pub(super) fn not_the_agent(args: &[Arg]) -> String {
    let argv: Vec<&str> = args.iter().map(|a| a.written.as_str()).collect();
    format!("the container starts {argv:?}, not replicatoor itself: the agent's arguments cannot be read")
}

pub(super) fn shell_without_command(shell: &Arg) -> String {
    format!("the {} starts a shell without a command: the agent's arguments cannot be read", shell.from)
}

pub(super) fn shell_script_file(shell: &Arg, script: &Arg) -> String {
    format!("the {} runs the shell script file {:?}: the agent's arguments cannot be read", shell.from, script.written)
}

pub(super) fn operator_shell_command(script: &Arg, source: &str) -> String {
    format!(
        "the {} runs the shell command {:?} ({source}): the operator can make it run anything",
        script.from, script.written
    )
}

pub(super) fn expanding_shell(shell: &Arg, script: &Arg, value: &str) -> String {
    format!(
        "the {} runs through a shell that {} at run time ({} -c {value:?}): its arguments are not literal",
        script.from,
        expands(value),
        shell.written
    )
}

pub(super) fn not_run(arg: &Arg, subcommand: &str) -> String {
    format!("the {} runs `replicatoor {subcommand}`, not `replicatoor run`: its arguments are no settings", arg.from)
}

pub(super) fn not_a_flag(arg: &Arg, text: &str) -> String {
    format!("{} argument {text:?} is not a flag of replicatoor run: the agent refuses it", arg.from)
}

pub(super) fn not_a_setting(arg: &Arg) -> String {
    format!(
        "{} argument {:?} is not a setting of replicatoor run: the agent refuses it, but it is passed",
        arg.from, arg.written
    )
}

pub(super) fn no_value(setting: &Setting, arg: &Arg) -> String {
    format!("--{} has no value in the {}: the agent refuses to start", setting.flag, arg.from)
}

/// What a shell script expands, for the sentence: its `$NAME`s, or that it is shell syntax.
fn expands(script: &str) -> String {
    let vars: Vec<String> = script
        .match_indices('$')
        .filter_map(|(i, _)| {
            let rest = script[i + 1..].trim_start_matches('{');
            let n = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            (n > 0).then(|| format!("${}", &rest[..n]))
        })
        .collect();
    if vars.is_empty() {
        "interprets its command".into()
    } else {
        format!("expands {}", vars.join(", "))
    }
}
