//! The agent's own service in a compose, and where each of its settings comes from.
//!
//! The rule that finds it (docs/operations.md, "What the operator may set", states it too): the agent's
//! service is the one service that sets a `REPLICATOOR_*` variable in `environment`, or whose image,
//! entrypoint or command names `replicatoor`. None, or more than one, is an error: the node then cannot
//! tell which settings are its own.

use crate::reader::{push_new, AppCompose, ComposeError, Service, Value, Word};
use crate::settings::{Setting, SETTINGS};
use crate::words::{interpolate, plain_script, split};

mod say;

/// Where one setting's value comes from in the agent's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub setting: &'static str,
    /// `--flag value` / `--flag=value` / `--flag` in the command, or `environment REPLICATOOR_X`.
    pub place: String,
    pub value: Value,
}

/// The agent's settings as its measured compose fixes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The service name.
    pub service: String,
    /// One entry per setting the service sets (the command's beats the environment's, as in the agent),
    /// in the order of [`crate::settings::SETTINGS`]. A setting absent here takes its built-in default.
    pub settings: Vec<Origin>,
    /// Ways the operator can reach the agent's configuration that name no single setting
    /// (`env_file`, an unparsable shell command, an unknown flag, `extends`, ...): each a sentence.
    pub outside: Vec<String>,
}

impl AgentConfig {
    /// The origin of one setting, by its TOML key.
    pub fn get(&self, key: &str) -> Option<&Origin> {
        self.settings.iter().find(|o| o.setting == key)
    }
}

/// Find the agent's service by the rule above and read its settings.
///
/// The argument vector is read as `replicatoor` (clap) reads it: `--flag value`, `--flag=value`, a
/// switch alone (its value reads `"true"`), global flags before `run` (or `config check`), and the
/// command's value beating the environment's. A switch written `--flag=false` keeps its text. What
/// cannot be read (a substituted argument that can be any flag, a shell that expands at run time, an
/// unknown flag, `env_file`, a file named by `--config`) is said in `outside`.
pub fn agent_config(compose: &AppCompose) -> Result<AgentConfig, ComposeError> {
    let candidates: Vec<&Service> = compose.services.iter().filter(|s| runs_agent(s)).collect();
    let service = match candidates[..] {
        [one] => one,
        [] => return Err(say::no_agent(&compose.services)),
        _ => return Err(say::several_agents(&candidates)),
    };
    let mut reading = Reading { command: vec![None; SETTINGS.len()], outside: Vec::new() };
    compose.outside.iter().chain(&service.outside).for_each(|sentence| reading.say(sentence.clone()));
    if !service.env_files.is_empty() {
        reading.say(say::env_files(&service.env_files));
    }
    if let Some(Word { value: Value::Operator { source }, written }) = &service.image {
        reading.say(format!("image {written:?}: {source}: the operator chooses the code that runs"));
    }
    reading.program(&start_args(service));
    let settings: Vec<Origin> = SETTINGS
        .iter()
        .zip(reading.command)
        .filter_map(|(setting, from_command)| from_command.or_else(|| from_environment(service, setting)))
        .collect();
    let mut outside = reading.outside;
    // Settings may also come from a `--config` file the compose names, which is not read here.
    outside.extend(settings.iter().find(|o| o.setting == "config").map(say::config_file));
    Ok(AgentConfig { service: service.name.clone(), settings, outside })
}

fn literal(text: &str) -> Value {
    Value::Literal { value: text.into() }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The rule: a `REPLICATOOR_*` variable in `environment`, or the word `replicatoor` as the image's
/// repository (registry, tag and digest aside) or as the file name of a word of the entrypoint or
/// command (a shell script's words included).
fn runs_agent(s: &Service) -> bool {
    let in_argv = |Word { written, .. }: &Word| {
        written.split(|c: char| c.is_whitespace() || "'\";&|()`".contains(c)).any(|w| file_name(w) == "replicatoor")
    };
    s.environment.iter().any(|(key, _)| key.starts_with("REPLICATOOR_"))
        || s.image.as_ref().is_some_and(|image| image_names_agent(&image.written))
        || [&s.entrypoint, &s.command].into_iter().flatten().flatten().any(in_argv)
}

/// `ghcr.io/x/replicatoor@sha256:…`, `replicatoor:1`, `localhost:5000/team/replicatoor-agent`.
fn image_names_agent(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let path = match repo.split_once('/') {
        Some((registry, path)) if registry.contains(['.', ':']) || registry == "localhost" => path,
        _ => repo,
    };
    path.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| word == "replicatoor")
}

fn from_environment(service: &Service, setting: &Setting) -> Option<Origin> {
    let (_, value) = service.environment.iter().find(|(key, _)| key == setting.env)?;
    Some(Origin { setting: setting.key, place: format!("environment {}", setting.env), value: value.clone() })
}

/// One element of the container's argument vector, and where it is written.
#[derive(Debug, Clone)]
struct Arg {
    value: Value,
    written: String,
    from: &'static str,
}

/// The argument vector the container starts with. Docker drops the image's CMD when the compose sets
/// `entrypoint`; without one, the image's own apply: ENTRYPOINT `replicatoor`, CMD `run`.
fn start_args(s: &Service) -> Vec<Arg> {
    let args = |words: &Option<Vec<Word>>, from| {
        let arg = |w: &Word| Arg { value: w.value.clone(), written: w.written.clone(), from };
        words.as_ref().map(|words| words.iter().map(arg).collect())
    };
    let image = |text: &str, from| vec![Arg { value: literal(text), written: text.into(), from }];
    let entrypoint: Option<Vec<Arg>> = args(&s.entrypoint, "entrypoint");
    let command = match (&entrypoint, args(&s.command, "command")) {
        (_, Some(command)) => command,
        (Some(_), None) => Vec::new(),
        (None, None) => image("run", "image's command"),
    };
    [entrypoint.unwrap_or_else(|| image("replicatoor", "image's entrypoint")), command].concat()
}

/// Shells whose `-c` script is read as words when it is plain.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// The argument vector being read: each setting the command sets, and what cannot be read.
struct Reading {
    command: Vec<Option<Origin>>,
    outside: Vec<String>,
}

impl Reading {
    fn say(&mut self, sentence: String) {
        push_new(&mut self.outside, sentence);
    }

    /// Find the agent in the argument vector: past wrappers (`tini --`, `env`, `exec`), into a shell's
    /// plain `-c` script.
    fn program(&mut self, args: &[Arg]) {
        for (i, arg) in args.iter().enumerate() {
            let Value::Literal { value } = &arg.value else {
                return self.say(say::any_program(arg));
            };
            match file_name(value) {
                "replicatoor" => return self.cli(&args[i + 1..]),
                name if SHELLS.contains(&name) => return self.shell(arg, &args[i + 1..]),
                _ => {}
            }
            // `env X=1 replicatoor run`, or a script's `X=1 replicatoor run`: a variable this reader
            // does not count as the environment's.
            if value.split_once('=').is_some_and(|(name, _)| !name.is_empty() && !name.starts_with('-')) {
                self.say(format!("the {} sets {value:?} for the program it starts: not read as a setting", arg.from));
            }
        }
        self.say(say::not_the_agent(args));
    }

    /// `sh [options] -c SCRIPT`: the script's words are the arguments only when it is plain words.
    fn shell(&mut self, shell: &Arg, args: &[Arg]) {
        let (mut dash_c, mut i) = (false, 0);
        while let Some(Value::Literal { value }) = args.get(i).map(|a| &a.value) {
            if value == "--" {
                i += 1;
                break;
            }
            if !(value.starts_with('-') || value.starts_with('+')) || value.len() < 2 {
                break;
            }
            dash_c |= value.starts_with('-') && !value.starts_with("--") && value.contains('c');
            i += if value == "-o" || value == "+o" { 2 } else { 1 };
        }
        let Some(script) = args.get(i) else {
            return self.say(say::shell_without_command(shell));
        };
        match &script.value {
            _ if !dash_c => self.say(say::shell_script_file(shell, script)),
            Value::Operator { source } => self.say(say::operator_shell_command(script, source)),
            Value::Literal { value } if plain_script(value) => match split(value) {
                Ok(words) => {
                    let from = script.from;
                    let args: Vec<Arg> =
                        words.into_iter().map(|w| Arg { value: literal(&w), written: w, from }).collect();
                    self.program(&args)
                }
                Err(e) => self.say(format!("the {} runs a shell command that cannot be read: {e}", script.from)),
            },
            Value::Literal { value } => self.say(say::expanding_shell(shell, script, value)),
        }
    }

    /// `replicatoor [global flags] run|config check [flags]`.
    fn cli(&mut self, args: &[Arg]) {
        let (mut i, check) = (0, literal("check"));
        i = loop {
            let Some(arg) = args.get(i) else {
                return self.say("replicatoor is started without the run subcommand: it does not run the agent".into());
            };
            match &arg.value {
                Value::Literal { value } if value == "run" => break i + 1,
                Value::Literal { value } if value == "config" && args.get(i + 1).map(|a| &a.value) == Some(&check) => {
                    break i + 2
                }
                Value::Literal { value } if !value.starts_with('-') => return self.say(say::not_run(arg, value)),
                // Global flags (`--log-format`) come before the subcommand too.
                _ => i = self.flag(args, i),
            }
        };
        while i < args.len() {
            i = self.flag(args, i);
        }
    }

    /// The flag at `args[i]` (with its value, if it takes one); returns the index after it.
    fn flag(&mut self, args: &[Arg], i: usize) -> usize {
        let Some(arg) = args.get(i) else { return i + 1 };
        let operator = matches!(arg.value, Value::Operator { .. });
        // Of a substituted argument only the text before the substitution is known.
        let text = match &arg.value {
            Value::Literal { value } => value.clone(),
            Value::Operator { .. } => interpolate(&arg.written).map(|t| t.literal).unwrap_or_default(),
        };
        let flag = text.strip_prefix("--").filter(|b| !b.is_empty());
        let (name, inline) = match flag.map(|body| body.split_once('=').map_or((body, None), |(n, v)| (n, Some(v)))) {
            // A substituted argument names its flag only when an `=` precedes the substitution.
            Some((name, inline)) if inline.is_some() || !operator => (name, inline),
            _ if operator => {
                self.say(say::any_flag(arg));
                return i + 1;
            }
            _ if text == "--" => {
                self.say(format!("the {} passes arguments after `--`: replicatoor run takes none", arg.from));
                return args.len();
            }
            _ => {
                self.say(say::not_a_flag(arg, &text));
                return i + 1;
            }
        };
        let Some(at) = SETTINGS.iter().position(|s| s.flag == name) else {
            // `config check`'s own switch sets nothing `run` reads.
            if name != "deny-warnings" {
                self.say(say::not_a_setting(arg));
            }
            return i + 1;
        };
        let setting = &SETTINGS[at];
        let place = format!("--{} in {}", setting.flag, arg.from);
        match inline {
            Some(value) => self.set(at, place, if operator { arg.value.clone() } else { literal(value) }),
            None if setting.switch => self.set(at, place, literal("true")),
            None => {
                let Some(next) = args.get(i + 1) else {
                    self.say(say::no_value(setting, arg));
                    return i + 1;
                };
                self.set(at, place, next.value.clone());
                return i + 2;
            }
        }
        i + 1
    }

    /// Setting `SETTINGS[at]`. A flag given again: clap appends (`--witness-rpc-url`) or refuses; an
    /// operator's value stays.
    fn set(&mut self, at: usize, place: String, value: Value) {
        let value = match (self.command[at].take().map(|o| o.value), value) {
            (Some(earlier @ Value::Operator { .. }), _) => earlier,
            (Some(Value::Literal { value: a }), Value::Literal { value: b }) => literal(&format!("{a},{b}")),
            (_, value) => value,
        };
        self.command[at] = Some(Origin { setting: SETTINGS[at].key, place, value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::read;
    use crate::reader::tests::{app_compose, lit, source};
    use crate::settings::{by_key, Class};

    const IMAGE: &str = "ghcr.io/x/replicatoor@sha256:0000000000000000000000000000000000000000000000000000000000000000";

    /// The agent's configuration from one `agent` service (`body`: its fields, indented by four).
    fn agent(body: &str, allowed: &[&str]) -> AgentConfig {
        let yaml = format!("services:\n  agent:\n    image: {IMAGE}\n{body}");
        agent_config(&read(&app_compose(&yaml, allowed)).unwrap()).unwrap()
    }

    fn value<'a>(config: &'a AgentConfig, key: &str) -> &'a Value {
        &config.get(key).unwrap_or_else(|| panic!("{key} not set: {:?}", config.settings)).value
    }

    fn says(config: &AgentConfig, words: &[&str]) -> bool {
        config.outside.iter().any(|o| words.iter().all(|w| o.contains(w)))
    }

    #[test]
    fn a_whole_substituted_argument_can_be_any_flag() {
        let config = agent("    command: [\"run\", \"${X}\"]\n", &[]);
        assert!(says(&config, &["\"${X}\"", "any flag"]), "{:?}", config.outside);
        assert!(config.settings.is_empty());
        let before = agent("    command: [\"${X}\", \"run\"]\n", &[]);
        assert!(says(&before, &["${X}", "any flag"]), "before the subcommand too: {:?}", before.outside);
        let flag_part = agent("    command: [\"run\", \"--dep${X}=1\"]\n", &[]);
        assert!(says(&flag_part, &["any flag"]), "a substituted flag name: {:?}", flag_part.outside);
    }

    #[test]
    fn a_substituted_flag_value_is_the_operators() {
        let config = agent("    command: [\"run\", \"--deployment=${PIN}\", \"--contract\", \"${C}\"]\n", &[]);
        let deployment = config.get("deployment").unwrap();
        assert_eq!(deployment.place, "--deployment in command");
        assert!(source(&deployment.value).contains("${PIN}"));
        assert!(source(value(&config, "contract")).contains("${C}"));
        assert!(config.outside.is_empty(), "{:?}", config.outside);
    }

    #[test]
    fn a_substituted_config_file_is_the_operators() {
        let config = agent("    command: [\"run\", \"--config=${CFG}\"]\n", &[]);
        assert!(source(value(&config, "config")).contains("${CFG}"));
        assert_eq!(by_key("config").map(|s| s.class), Some(Class::Security));
        assert!(says(&config, &["TOML file", "--config in command"]), "{:?}", config.outside);
    }

    #[test]
    fn a_shell_that_expands_at_run_time_is_not_literal() {
        // `$EXTRA` in the compose: Compose substitutes it into the script.
        let substituted = agent("    entrypoint: [\"/bin/sh\", \"-c\", \"replicatoor run $EXTRA\"]\n", &[]);
        assert!(says(&substituted, &["shell command", "${EXTRA}", "anything"]), "{:?}", substituted.outside);
        assert!(substituted.settings.is_empty());
        // `$$EXTRA`: the shell expands $EXTRA when the container starts.
        let shell = agent(
            "    entrypoint: [\"/bin/sh\", \"-c\", \"replicatoor run --deployment x $$EXTRA\"]\n    \
             environment:\n      REPLICATOOR_CONFIRMATIONS: \"4\"\n",
            &[],
        );
        assert!(says(&shell, &["shell that expands $EXTRA at run time", "not literal"]), "{:?}", shell.outside);
        assert!(shell.get("deployment").is_none(), "nothing of an expanding script is trusted");
        assert_eq!(value(&shell, "confirmations"), &lit("4"), "the environment still counts");
        for script in ["replicatoor run; replicatoor run --genesis", "replicatoor run `cat f`", "replicatoor run *"] {
            let config = agent(&format!("    entrypoint: [\"bash\", \"-c\", {script:?}]\n"), &[]);
            assert!(says(&config, &["shell", "not literal"]), "{script}: {:?}", config.outside);
        }
        // A plain script is its words.
        let plain = agent(
            "    entrypoint: [\"/bin/bash\", \"-ec\", \"exec replicatoor run --confirmations 5 --genesis\"]\n",
            &[],
        );
        assert_eq!(plain.get("confirmations").unwrap().place, "--confirmations in entrypoint");
        assert_eq!(value(&plain, "confirmations"), &lit("5"));
        assert_eq!(value(&plain, "genesis"), &lit("true"));
        assert!(plain.outside.is_empty(), "{:?}", plain.outside);
        let file = agent("    entrypoint: [\"sh\", \"/start.sh\"]\n", &[]);
        assert!(says(&file, &["shell script file", "/start.sh"]));
    }

    #[test]
    fn a_merge_key_from_an_extension_carries_the_operators_value() {
        let yaml = format!(
            "x-extra: &extra\n  REPLICATOOR_DANGEROUSLY_TRUST_RPC: ${{TRUST}}\n  REPLICATOOR_CONTRACT: \"0x11\"\n\
             services:\n  agent:\n    image: {IMAGE}\n    environment:\n      <<: *extra\n      REPLICATOOR_LOG: info\n"
        );
        let config = agent_config(&read(&app_compose(&yaml, &[])).unwrap()).unwrap();
        let trust = config.get("dangerously_trust_rpc").unwrap();
        assert_eq!(trust.place, "environment REPLICATOOR_DANGEROUSLY_TRUST_RPC");
        assert!(source(&trust.value).contains("${TRUST}"));
        assert_eq!(value(&config, "contract"), &lit("0x11"), "merged from a literal anchor: literal");
    }

    #[test]
    fn a_literal_switch_reads_true_and_beats_the_environment() {
        let body = r#"
    command: ["run", "--dangerously-trust-rpc", "--allow-insecure-rpc=false"]
    environment:
      REPLICATOOR_DANGEROUSLY_TRUST_RPC: "false"
"#;
        let config = agent(body, &[]);
        let trust = config.get("dangerously_trust_rpc").unwrap();
        assert_eq!((trust.place.as_str(), &trust.value), ("--dangerously-trust-rpc in command", &lit("true")));
        assert_eq!(value(&config, "allow_insecure_rpc"), &lit("false"), "--switch=value keeps its text");
        let from_env = agent("    environment:\n      REPLICATOOR_GENESIS: \"true\"\n", &[]);
        assert_eq!(value(&from_env, "genesis"), &lit("true"));
    }

    #[test]
    fn a_substituted_transport_setting_is_reported_for_the_caller_to_class() {
        let config = agent("    environment:\n      REPLICATOOR_PCCS_URL: ${PCCS}\n", &[]);
        assert!(source(value(&config, "pccs_url")).contains("${PCCS}"));
        assert_eq!(by_key("pccs_url").map(|s| s.class), Some(Class::Transport));
        assert!(config.outside.is_empty());
    }

    #[test]
    fn flags_in_both_forms_global_flags_and_precedence() {
        let config = agent(
            "    command: [\"--log-format\", \"json\", \"run\", \"--confirmations=5\", \"--start-block\", \"7\", \
             \"--witness-rpc-url\", \"https://a\", \"--witness-rpc-url=https://b\", \"--log-format=human\"]\n    \
             environment:\n      REPLICATOOR_CONFIRMATIONS: ${C}\n      REPLICATOOR_STATE_DIR: /s\n      \
             REPLICATOOR_NOT_A_SETTING: x\n",
            &[],
        );
        let confirmations = config.get("confirmations").unwrap();
        assert_eq!((confirmations.place.as_str(), &confirmations.value), ("--confirmations in command", &lit("5")));
        assert_eq!(value(&config, "start_block"), &lit("7"));
        assert_eq!(value(&config, "witness_rpc_urls"), &lit("https://a,https://b"));
        assert_eq!(value(&config, "log_format"), &lit("json,human"));
        assert_eq!(config.get("state_dir").unwrap().place, "environment REPLICATOOR_STATE_DIR");
        let keys: Vec<&str> = config.settings.iter().map(|o| o.setting).collect();
        let expected = ["witness_rpc_urls", "log_format", "start_block", "state_dir", "confirmations"];
        assert_eq!(keys, expected, "the order of SETTINGS; unknown REPLICATOOR_ variables are no setting");
        assert!(config.outside.is_empty(), "{:?}", config.outside);
        let check = agent("    command: [config, check, --deny-warnings, --contract, \"0x1\"]\n", &[]);
        assert_eq!(value(&check, "contract"), &lit("0x1"));
        assert!(check.outside.is_empty(), "{:?}", check.outside);
    }

    #[test]
    fn unknown_flags_and_other_subcommands_are_said() {
        let config = agent("    command: [run, --no-such-flag, -v, --, --genesis]\n", &[]);
        assert!(says(&config, &["\"--no-such-flag\"", "not a setting"]), "{:?}", config.outside);
        assert!(says(&config, &["\"-v\""]));
        assert!(says(&config, &["after `--`"]));
        assert!(config.get("genesis").is_none());
        let other = agent("    command: [measure, --compose, x]\n", &[]);
        assert!(says(&other, &["replicatoor measure"]));
        // Setting an entrypoint drops the image's CMD: no `run`.
        let no_run = agent("    entrypoint: [replicatoor]\n", &[]);
        assert!(says(&no_run, &["without the run subcommand"]));
        let wrapped =
            agent("    entrypoint: [tini, --, /usr/local/bin/replicatoor]\n    command: [run, --genesis]\n", &[]);
        assert_eq!(value(&wrapped, "genesis"), &lit("true"));
        let elsewhere =
            agent("    entrypoint: [/app/start.sh]\n    environment:\n      REPLICATOOR_GENESIS: \"true\"\n", &[]);
        assert!(says(&elsewhere, &["/app/start.sh", "cannot be read"]));
    }

    #[test]
    fn environment_forms_passthrough_and_allowed_envs() {
        let list = agent(
            "    environment:\n      - REPLICATOOR_CONTRACT=0x11\n      - REPLICATOOR_DEPLOYMENT=${PIN}\n      \
             - REPLICATOOR_GENESIS\n      - ${NAME}=1\n",
            &["REPLICATOOR_START_BLOCK", "REPLICATOOR_CONFIRMATIONS"],
        );
        assert_eq!(value(&list, "contract"), &lit("0x11"));
        assert!(source(value(&list, "deployment")).contains("${PIN}"));
        assert!(source(value(&list, "genesis")).contains("passed through"));
        assert!(list.get("start_block").is_none(), "allowed but not given to the container");
        assert!(says(&list, &["${NAME}=1", "any variable"]));
        let allowed =
            agent("    environment:\n      REPLICATOOR_CONFIRMATIONS: \"2\"\n", &["REPLICATOOR_CONFIRMATIONS"]);
        assert!(source(value(&allowed, "confirmations")).contains("allowed_envs"));
        let defaults = agent(
            "    environment:\n      REPLICATOOR_CONTRACT: ${C:-0x11}\n      REPLICATOOR_DEPLOYMENT: $$PIN\n",
            &[],
        );
        assert!(source(value(&defaults, "contract")).contains("${C}"), "a default is still the operator's choice");
        assert_eq!(value(&defaults, "deployment"), &lit("$PIN"));
    }

    #[test]
    fn env_files_extends_and_images_the_operator_chooses() {
        for body in
            ["    env_file: agent.env\n", "    env_file: [agent.env]\n", "    env_file:\n      - path: agent.env\n"]
        {
            let config = agent(body, &[]);
            assert!(says(&config, &["env_file \"agent.env\"", "REPLICATOOR_*"]), "{body}: {:?}", config.outside);
        }
        let yaml =
            "services:\n  agent:\n    image: reg/replicatoor:${TAG}\n    extends: {file: base.yml, service: b}\n";
        let config = agent_config(&read(&app_compose(yaml, &[])).unwrap()).unwrap();
        assert!(says(&config, &["reg/replicatoor:${TAG}", "chooses the code"]), "{:?}", config.outside);
        assert!(says(&config, &["base.yml"]));
        let string = agent("    command: run --deployment=${PIN}\n", &[]);
        assert!(source(value(&string, "deployment")).contains("${PIN}"));
        assert!(says(&string, &["any argument"]));
        let quoted = agent("    command: run --deployment 'chain_id = 1' --contract=\"0x1\"\n", &[]);
        assert_eq!(value(&quoted, "deployment"), &lit("chain_id = 1"));
        assert_eq!(value(&quoted, "contract"), &lit("0x1"));
    }

    #[test]
    fn the_agent_is_exactly_one_service() {
        let two = format!(
            "services:\n  a:\n    image: {IMAGE}\n  b:\n    environment:\n      REPLICATOOR_GENESIS: \"true\"\n  \
             app:\n    image: reg/app:1\n"
        );
        let err = agent_config(&read(&app_compose(&two, &[])).unwrap()).unwrap_err().to_string();
        assert!(err.contains("a, b") && !err.contains("app"), "{err}");
        let none = "services:\n  app:\n    image: reg/app:1\n    command: [echo, replicatoor-ish]\n";
        let err = agent_config(&read(&app_compose(none, &[])).unwrap()).unwrap_err().to_string();
        assert!(err.contains("no service") && err.contains("app"), "{err}");
        let by_command =
            "services:\n  x:\n    image: reg/base\n    entrypoint: [/usr/local/bin/replicatoor]\n    command: [run]\n";
        assert_eq!(agent_config(&read(&app_compose(by_command, &[])).unwrap()).unwrap().service, "x");
        for image in ["replicatoor", "replicatoor:1", "localhost:5000/team/replicatoor-agent", IMAGE] {
            assert!(image_names_agent(image), "{image}");
        }
        for image in ["replicatoor.io/app", "reg/app:replicatoor", "reg/replicatoorx"] {
            assert!(!image_names_agent(image), "{image}");
        }
    }

    #[test]
    fn the_shipped_example_measures_its_security_settings() {
        let yaml = include_str!("../../../examples/dstack/docker-compose.yml");
        let config = agent_config(&read(&app_compose(yaml, &[])).unwrap()).unwrap();
        assert_eq!(config.service, "replicatoor");
        for key in [
            "deployment",
            "contract",
            "start_block",
            "confirmations",
            "quote_provider",
            "dstack_socket",
            "state_dir",
            "secret_file",
            "pccs_url",
            "http_addr",
            "log_format",
            "log",
        ] {
            assert!(matches!(value(&config, key), Value::Literal { .. }), "{key}: {:?}", config.get(key));
        }
        assert_eq!(value(&config, "contract"), &lit("0x1111111111111111111111111111111111111111"));
        assert_eq!(value(&config, "start_block"), &lit("123456"));
        assert!(
            matches!(value(&config, "deployment"), Value::Literal { value } if value.contains("mode = \"beacon\""))
        );
        for key in ["rpc_url", "sender_key", "beacon_url", "genesis"] {
            assert!(source(value(&config, key)).contains("substituted"), "{key}");
        }
        for key in ["witness_rpc_urls", "generate_secret"] {
            assert!(source(value(&config, key)).contains("passed through"), "{key}");
        }
        let security_from_operator: Vec<&str> = config
            .settings
            .iter()
            .filter(|o| matches!(o.value, Value::Operator { .. }))
            .filter(|o| by_key(o.setting).is_some_and(|s| s.class == Class::Security))
            .map(|o| o.setting)
            .collect();
        assert!(security_from_operator.is_empty(), "{security_from_operator:?}");
        assert!(config.outside.is_empty(), "{:?}", config.outside);
    }
}
