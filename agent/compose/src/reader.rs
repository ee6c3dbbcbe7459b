//! An app-compose.json read as Docker Compose reads its `docker_compose_file`: every value either
//! written literally in the measured bytes, or marked with where the operator can change it.
//!
//! The file is read as compose-go reads it: every YAML document (merged in order), anchors and merge
//! keys, `!reset`, `$` interpolation of string values, `extends` within the file. What this reader
//! cannot see (another file, a shell at run time) is said in an `outside` sentence instead.

use crate::words::{interpolate, split, Interpolated};
use crate::yaml::{self, Node};

mod say;

/// Why an app-compose.json could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("app-compose.json is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("docker_compose_file is not YAML: {0}")]
    Yaml(String),
    #[error("docker_compose_file: {0}")]
    Shape(String),
}

/// A value as the container will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Written literally in the measured bytes (after YAML anchors and merge keys, with `$$` read as `$`).
    Literal { value: String },
    /// Chosen, wholly or in part, by the machine's operator; `source` says how (`${RPC} substituted
    /// from the operator's environment`, `passed through from the operator's environment`, `env_file
    /// agent.env`, `listed in allowed_envs`, `a shell expands $EXTRA at run time`, ...).
    Operator { source: String },
}

impl From<Interpolated> for Value {
    /// Literal only when nothing was substituted.
    fn from(i: Interpolated) -> Self {
        if i.vars.is_empty() {
            Value::Literal { value: i.literal }
        } else {
            Value::Operator { source: say::substituted(&i.vars) }
        }
    }
}

/// One service of the compose file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// `image`, if any.
    pub image: Option<Word>,
    /// `environment` (map or list form, merge keys resolved), in file order; a key listed in
    /// `allowed_envs` or passed through without a value is `Value::Operator`.
    pub environment: Vec<(String, Value)>,
    /// `env_file` entries: every variable in them is the operator's.
    pub env_files: Vec<String>,
    /// `entrypoint` then `command`, as the argument vector the container starts with (exec form as is;
    /// string form split as Compose splits it, without a shell). None where neither is set (the image's
    /// own ENTRYPOINT and CMD apply).
    pub entrypoint: Option<Vec<Word>>,
    pub command: Option<Vec<Word>>,
    /// Other ways values reach this service from outside the measured bytes (`extends` from another
    /// file, ...), each said in a sentence.
    pub outside: Vec<String>,
}

/// The `image`, or one element of `entrypoint` or `command`: its value, and its text as written in the
/// file (anchors resolved, before interpolation; a string-form command split into words), which shows
/// what is literal around an operator's substitution (the flag `--deployment` in `--deployment=${PIN}`,
/// the name `replicatoor` in `reg/replicatoor:${TAG}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub value: Value,
    pub written: String,
}

/// A read app-compose.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCompose {
    /// Dstack's `allowed_envs`: variables the operator may set (encrypted environment).
    pub allowed_envs: Vec<String>,
    pub services: Vec<Service>,
    /// Compose-file-wide ways values come from outside (`include`, ...), each said in a sentence.
    pub outside: Vec<String>,
}

fn shape(message: impl Into<String>) -> ComposeError {
    ComposeError::Shape(message.into())
}

/// Variables the launcher (app-compose.sh, bash, docker compose, nerdctl) reads from its environment.
const LAUNCHER_PREFIXES: &[&str] = &["COMPOSE_", "DOCKER_", "BUILDKIT_", "NERDCTL_", "LD_", "BASH"];
const LAUNCHER_NAMES: &[&str] = &["APP_COMPOSE_FILE", "PATH", "HOME", "ENV", "SHELLOPTS", "IFS"];

/// Whether a script field runs nothing: null, blank text, or a list of those.
fn blank(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.trim().is_empty(),
        serde_json::Value::Array(items) => items.iter().all(blank),
        other => other.is_null(),
    }
}

/// Read an app-compose.json (Dstack's format: the compose file is the `docker_compose_file` string).
pub fn read(app_compose: &[u8]) -> Result<AppCompose, ComposeError> {
    let json: serde_json::Value = serde_json::from_slice(app_compose)?;
    let doc = json.as_object().ok_or_else(|| shape("app-compose.json is not a JSON object"))?;
    // Dstack's app-compose.sh starts docker_compose_file with these runners only (`bash` runs bash_script).
    if let Some(runner) = doc.get("runner").filter(|r| !r.is_null()) {
        if !matches!(runner.as_str(), Some("docker-compose" | "nerdctl-compose")) {
            return Err(shape(format!("app-compose.json's runner is {runner}: it does not run docker_compose_file")));
        }
    }
    // Absent or null: none.
    let allowed_envs =
        serde_json::from_value::<Option<Vec<String>>>(doc.get("allowed_envs").cloned().unwrap_or_default())
            .map_err(|_| shape("allowed_envs is not a list of names"))?
            .unwrap_or_default();
    let text = doc
        .get("docker_compose_file")
        .and_then(|v| v.as_str())
        .ok_or_else(|| shape("app-compose.json has no docker_compose_file string"))?;
    let mut compose = AppCompose { allowed_envs, services: Vec::new(), outside: Vec::new() };
    // Dstack runs these as bash, with the operator's decrypted variables, before the containers start.
    for script in ["init_script", "pre_launch_script"] {
        if doc.get(script).is_some_and(|s| !blank(s)) {
            compose.outside.push(say::runs_before_compose(script));
        }
    }
    // app-compose.sh and Compose read some variables themselves (which file to run, profiles, project).
    for name in &compose.allowed_envs {
        if LAUNCHER_PREFIXES.iter().any(|p| name.starts_with(p)) || LAUNCHER_NAMES.contains(&name.as_str()) {
            compose.outside.push(say::launcher_variable(name));
        }
    }
    let mut extends = Vec::new();
    // Compose merges a file's YAML documents in order, the later over the earlier.
    for document in yaml::load(text).map_err(ComposeError::Yaml)? {
        read_document(document, &mut compose, &mut extends)?;
    }
    let mut done = Vec::new();
    for ext in &extends {
        extend(&mut compose.services, &extends, ext, &mut done, 0)?;
    }
    for (key, value) in compose.services.iter_mut().flat_map(|s| &mut s.environment) {
        if compose.allowed_envs.contains(key) {
            *value = Value::Operator { source: say::ALLOWED.into() };
        }
    }
    Ok(compose)
}

/// A service's `extends`.
struct Extends {
    service: String,
    base: String,
    file: Option<String>,
}

fn read_document(document: Node, compose: &mut AppCompose, extends: &mut Vec<Extends>) -> Result<(), ComposeError> {
    let Node::Map(top) = document else { return Err(shape("the compose file is not a mapping")) };
    for (key, value) in top {
        match (key.as_str(), value) {
            ("services", Node::Map(services)) => {
                for (name, node) in services {
                    let (service, ext) = read_service(name, node)?;
                    extends.extend(ext);
                    match compose.services.iter_mut().find(|s| s.name == service.name) {
                        Some(earlier) => merge_into(earlier, service),
                        None => compose.services.push(service),
                    }
                }
            }
            ("services" | "include", Node::Null) => {}
            ("services", _) => return Err(shape("services is not a mapping")),
            ("include", value) => compose.outside.push(say::includes(&value)),
            // `x-` extensions only lend anchors (resolved already); volumes, networks... set no setting.
            _ => {}
        }
    }
    Ok(())
}

fn read_service(name: String, node: Node) -> Result<(Service, Option<Extends>), ComposeError> {
    let Node::Map(fields) = node else { return Err(shape(format!("service {name} is not a mapping"))) };
    let mut s = Service { name, ..Service::default() };
    let mut extends = None;
    for (key, value) in fields {
        let at = format!("services.{}.{key}", s.name);
        match key.as_str() {
            "image" => s.image = string(&value, &at)?.map(|text| word(text, &at)).transpose()?,
            "environment" => read_environment(&mut s, value, &at)?,
            "env_file" => s.env_files = read_env_files(value, &at)?,
            "entrypoint" => s.entrypoint = read_argv(&mut s.outside, value, &at)?,
            "command" => s.command = read_argv(&mut s.outside, value, &at)?,
            "extends" => extends = read_extends(&s.name, value, &at)?,
            "build" => s.outside.push(say::built(&s.name)),
            _ => {}
        }
    }
    Ok((s, extends))
}

/// A string's text (None for null). Compose's schema wants a YAML string where this is used: a number
/// or a list there makes Compose refuse the file.
fn string(node: &Node, at: &str) -> Result<Option<String>, ComposeError> {
    match node {
        Node::Null => Ok(None),
        Node::Str(text) => Ok(Some(text.clone())),
        _ => Err(shape(format!("{at} is not a string"))),
    }
}

fn field<'a>(fields: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn interpolated(text: &str, at: &str) -> Result<Interpolated, ComposeError> {
    interpolate(text).map_err(|e| shape(format!("{at}: {e}")))
}

/// A string's value as Compose interpolates it, with its text.
fn word(text: String, at: &str) -> Result<Word, ComposeError> {
    Ok(Word { value: interpolated(&text, at)?.into(), written: text })
}

fn set_env(environment: &mut Vec<(String, Value)>, key: String, value: Value) {
    match environment.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => environment.push((key, value)),
    }
}

/// `environment` as a mapping (`KEY: value`, `KEY:` passed through) or a list (`KEY=value`, `KEY`
/// passed through); a key given twice keeps its last value, as in Compose.
fn read_environment(s: &mut Service, value: Node, at: &str) -> Result<(), ComposeError> {
    let passed = || Value::Operator { source: say::PASSED.into() };
    match value {
        Node::Null => {}
        Node::Map(entries) => {
            for (key, v) in entries {
                let value = match v {
                    Node::Null => passed(),
                    Node::Str(text) => interpolated(&text, at)?.into(),
                    Node::Scalar(text) => Value::Literal { value: text },
                    _ => return Err(shape(format!("{at}.{key} is not a string, number, boolean or null"))),
                };
                set_env(&mut s.environment, key, value);
            }
        }
        Node::Seq(items) => {
            for item in items {
                let text = string(&item, at)?.ok_or_else(|| shape(format!("{at} has an empty entry")))?;
                // Compose interpolates the whole entry, then splits it at its first `=`.
                let entry = interpolated(&text, at)?;
                match entry.literal.split_once('=') {
                    Some((key, literal)) => {
                        let value = Interpolated { literal: literal.into(), ..entry.clone() };
                        set_env(&mut s.environment, key.into(), value.into());
                    }
                    None if entry.vars.is_empty() => set_env(&mut s.environment, entry.literal.clone(), passed()),
                    None => s.outside.push(say::named_by_operator(at, &text)),
                }
            }
        }
        _ => return Err(shape(format!("{at} is neither a mapping nor a list"))),
    }
    Ok(())
}

/// `env_file`: a path, a list of paths, or a list of `{path, required, format}`.
fn read_env_files(value: Node, at: &str) -> Result<Vec<String>, ComposeError> {
    let items = match value {
        Node::Null => return Ok(Vec::new()),
        Node::Seq(items) => items,
        one @ Node::Str(_) => vec![one],
        _ => return Err(shape(format!("{at} is neither a path nor a list"))),
    };
    let path = |item: &Node| match item {
        Node::Map(fields) => field(fields, "path").and_then(|p| string(p, at).ok().flatten()),
        item => string(item, at).ok().flatten(),
    };
    items.iter().map(|item| path(item).ok_or_else(|| shape(format!("{at} has an entry without a path")))).collect()
}

/// `entrypoint` / `command`: a list kept as given, or a string split into arguments. Compose
/// interpolates a string before splitting it, so a substitution in it can add arguments.
fn read_argv(outside: &mut Vec<String>, value: Node, at: &str) -> Result<Option<Vec<Word>>, ComposeError> {
    let words = match value {
        Node::Null => return Ok(None),
        Node::Seq(items) => {
            let element =
                |item: &Node| word(string(item, at)?.ok_or_else(|| shape(format!("{at} has an empty element")))?, at);
            items.iter().map(element).collect::<Result<_, _>>()?
        }
        Node::Str(text) => {
            let whole = interpolated(&text, at)?;
            if whole.vars.is_empty() {
                let words = split(&whole.literal).map_err(|e| shape(format!("{at}: {e}")))?;
                words.into_iter().map(|w| Word { value: Value::Literal { value: w.clone() }, written: w }).collect()
            } else {
                outside.push(say::substituted_before_split(at, &text, &whole.vars));
                // For the words' sake only (which flag an argument names): the split is the operator's.
                let words = split(&text).unwrap_or_else(|_| vec![text.clone()]);
                let value = |w: &String| {
                    interpolate(w)
                        .map_or_else(|_| Value::Operator { source: say::substituted(&whole.vars) }, Value::from)
                };
                words.into_iter().map(|w| Word { value: value(&w), written: w }).collect()
            }
        }
        _ => return Err(shape(format!("{at} is neither a string nor a list"))),
    };
    Ok(Some(words))
}

/// `extends: base` or `extends: {service: base, file: other.yml}`.
fn read_extends(service: &str, value: Node, at: &str) -> Result<Option<Extends>, ComposeError> {
    let (base, file) = match value {
        Node::Null => return Ok(None),
        Node::Str(base) => (base, None),
        Node::Map(fields) => {
            let text = |key: &str| field(&fields, key).map(|v| string(v, at)).transpose().map(Option::flatten);
            (text("service")?.ok_or_else(|| shape(format!("{at} names no service")))?, text("file")?)
        }
        _ => return Err(shape(format!("{at} is neither a service name nor a mapping"))),
    };
    Ok(Some(Extends { service: service.into(), base, file }))
}

/// Resolve one `extends`: a service of this file is merged under the extending one (its own `extends`
/// first, as Compose does); one of another file cannot be read. Both are said in the service's `outside`.
fn extend<'a>(
    services: &mut [Service],
    all: &'a [Extends],
    ext: &'a Extends,
    done: &mut Vec<&'a str>,
    depth: usize,
) -> Result<(), ComposeError> {
    if done.contains(&ext.service.as_str()) {
        return Ok(());
    }
    if depth > all.len() {
        return Err(shape(format!("service {} extends itself through a cycle", ext.service)));
    }
    // Always found: every `extends` was read from a service of this file.
    let Some(at) = services.iter().position(|s| s.name == ext.service) else { return Ok(()) };
    let sentence = match &ext.file {
        Some(file) => say::extends_other_file(&ext.service, &ext.base, file),
        None => {
            if let Some(base_ext) = all.iter().find(|e| e.service == ext.base) {
                extend(services, all, base_ext, done, depth + 1)?;
            }
            let Some(base) = services.iter().find(|s| s.name == ext.base).cloned() else {
                return Err(shape(format!("service {} extends {}, which is not a service", ext.service, ext.base)));
            };
            let own = std::mem::replace(&mut services[at], Service { name: ext.service.clone(), ..base });
            merge_into(&mut services[at], own);
            format!("service {} extends service {} of this file: its values are read here", ext.service, ext.base)
        }
    };
    push_new(&mut services[at].outside, sentence);
    done.push(&ext.service);
    Ok(())
}

/// `later` over `earlier`, as Compose merges a service across documents and under `extends`:
/// environment by variable, `env_file` appended, image, entrypoint and command replaced.
fn merge_into(earlier: &mut Service, later: Service) {
    earlier.image = later.image.or_else(|| earlier.image.take());
    earlier.entrypoint = later.entrypoint.or_else(|| earlier.entrypoint.take());
    earlier.command = later.command.or_else(|| earlier.command.take());
    for (key, value) in later.environment {
        set_env(&mut earlier.environment, key, value);
    }
    later.env_files.into_iter().for_each(|file| push_new(&mut earlier.env_files, file));
    later.outside.into_iter().for_each(|sentence| push_new(&mut earlier.outside, sentence));
}

/// Append `item` unless it is there already.
pub(crate) fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An app-compose.json around a compose file, as Dstack writes it.
    pub(crate) fn app_compose(yaml: &str, allowed_envs: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "manifest_version": 2,
            "name": "test",
            "runner": "docker-compose",
            "docker_compose_file": yaml,
            "allowed_envs": allowed_envs,
        }))
        .unwrap()
    }

    fn service(yaml: &str, name: &str) -> Service {
        let compose = read(&app_compose(yaml, &[])).unwrap();
        compose.services.into_iter().find(|s| s.name == name).unwrap()
    }

    pub(crate) fn lit(value: &str) -> Value {
        Value::Literal { value: value.into() }
    }

    pub(crate) fn source(value: &Value) -> &str {
        match value {
            Value::Operator { source } => source,
            Value::Literal { value } => panic!("literal {value:?}, expected the operator's"),
        }
    }

    /// The values of an image, entrypoint or command.
    fn values<'a>(words: impl IntoIterator<Item = &'a Word>) -> Vec<Value> {
        words.into_iter().map(|w| w.value.clone()).collect()
    }

    fn env<'a>(s: &'a Service, key: &str) -> &'a Value {
        &s.environment.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1
    }

    #[test]
    fn environment_as_a_map_types_nulls_and_interpolation() {
        let yaml = r#"
services:
  a:
    environment:
      S: text
      N: 017
      B: true
      F: 1.50
      Q: "017"
      EMPTY: ""
      PASSED:
      PASSED_NULL: NULL
      D: $$HOME and $${X}
      V: ${PIN}
      U: pre-$PIN
"#;
        let s = service(yaml, "a");
        assert_eq!(env(&s, "S"), &lit("text"));
        assert_eq!(env(&s, "N"), &lit("15"), "Compose's YAML reads 017 as octal");
        assert_eq!(env(&s, "B"), &lit("true"));
        assert_eq!(env(&s, "F"), &lit("1.5"));
        assert_eq!(env(&s, "Q"), &lit("017"));
        assert_eq!(env(&s, "EMPTY"), &lit(""));
        assert!(source(env(&s, "PASSED")).contains("passed through"));
        assert!(source(env(&s, "PASSED_NULL")).contains("passed through"), "NULL is YAML's null too");
        assert_eq!(env(&s, "D"), &lit("$HOME and ${X}"), "$$ is a literal $");
        assert!(source(env(&s, "V")).contains("${PIN} substituted"));
        assert!(source(env(&s, "U")).contains("${PIN}"));
        let order: Vec<&str> = s.environment.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order[..3], ["S", "N", "B"], "file order");
    }

    #[test]
    fn every_substitution_form_is_the_operators() {
        for form in [
            "${V:-default}",
            "${V-default}",
            "${V:?set it}",
            "${V?set it}",
            "${V:+alt}",
            "${V+alt}",
            "x${V}",
            "$V",
            "${D:-${V}}",
        ] {
            let s = service(&format!("services:\n  a:\n    environment:\n      K: \"{form}\"\n"), "a");
            assert!(source(env(&s, "K")).contains("${V}"), "{form}");
        }
        let err = read(&app_compose("services:\n  a:\n    environment:\n      K: cost 5$\n", &[])).unwrap_err();
        assert!(err.to_string().contains("`$$`"), "Compose refuses a lone $: {err}");
    }

    #[test]
    fn environment_as_a_list() {
        let yaml = r#"
services:
  a:
    environment:
      - A=1
      - B=${PIN}
      - C
      - D=x=y
      - E=
      - ${NAME}=v
      - A=2
      - F=$$G
"#;
        let s = service(yaml, "a");
        assert_eq!(env(&s, "A"), &lit("2"), "the last of a repeated key counts");
        assert!(source(env(&s, "B")).contains("${PIN}"));
        assert!(source(env(&s, "C")).contains("passed through"));
        assert_eq!(env(&s, "D"), &lit("x=y"));
        assert_eq!(env(&s, "E"), &lit(""));
        assert_eq!(env(&s, "F"), &lit("$G"));
        assert_eq!(s.environment.len(), 6);
        assert!(s.outside.iter().any(|o| o.contains("${NAME}=v") && o.contains("any variable")), "{:?}", s.outside);
    }

    #[test]
    fn allowed_envs_make_a_variable_the_operators() {
        let yaml = "services:\n  a:\n    environment:\n      REPLICATOOR_CONTRACT: \"0x11\"\n      OTHER: x\n";
        let compose = read(&app_compose(yaml, &["REPLICATOOR_CONTRACT"])).unwrap();
        assert_eq!(compose.allowed_envs, ["REPLICATOOR_CONTRACT"]);
        assert!(source(env(&compose.services[0], "REPLICATOOR_CONTRACT")).contains("allowed_envs"));
        assert_eq!(env(&compose.services[0], "OTHER"), &lit("x"));
    }

    #[test]
    fn env_file_in_its_three_forms() {
        assert_eq!(service("services:\n  a:\n    env_file: agent.env\n", "a").env_files, ["agent.env"]);
        assert_eq!(service("services:\n  a:\n    env_file: [a.env, b.env]\n", "a").env_files, ["a.env", "b.env"]);
        let long = "services:\n  a:\n    env_file:\n      - path: ./a.env\n        required: false\n      - b.env\n";
        assert_eq!(service(long, "a").env_files, ["./a.env", "b.env"]);
        assert!(read(&app_compose("services:\n  a:\n    env_file:\n      - required: true\n", &[])).is_err());
    }

    #[test]
    fn command_and_entrypoint_in_exec_and_string_form() {
        let s = service(
            "services:\n  a:\n    entrypoint: [\"/usr/local/bin/replicatoor\", \"--log-format\", \"json\"]\n    \
             command: run --deployment 'a b' --confirmations=\"3\" x\\ y --note \"$$HOME\"\n",
            "a",
        );
        assert_eq!(
            values(s.entrypoint.iter().flatten()),
            [lit("/usr/local/bin/replicatoor"), lit("--log-format"), lit("json")]
        );
        let words = ["run", "--deployment", "a b", "--confirmations=3", "x y", "--note", "$HOME"];
        assert_eq!(values(s.command.iter().flatten()), words.map(lit));
        assert_eq!(s.command.unwrap().iter().map(|w| w.written.as_str()).collect::<Vec<_>>(), words);
        assert!(s.outside.is_empty());
        // A substitution in a string command is split after it is substituted: it can add arguments.
        let s = service("services:\n  a:\n    command: run --deployment=${PIN} --x 1\n", "a");
        let command = s.command.unwrap();
        assert_eq!(command[0].value, lit("run"));
        assert!(source(&command[1].value).contains("${PIN}"));
        assert_eq!(command[1].written, "--deployment=${PIN}");
        assert!(s.outside.iter().any(|o| o.contains("any argument")), "{:?}", s.outside);
        // Compose's schema wants strings: `3` unquoted makes it refuse the file.
        assert!(read(&app_compose("services:\n  a:\n    command: [run, --confirmations, 3]\n", &[])).is_err());
        assert!(read(&app_compose("services:\n  a:\n    image: 3\n", &[])).is_err());
        assert!(read(&app_compose("services:\n  a:\n    command: run 'open\n", &[])).is_err());
    }

    #[test]
    fn merge_keys_and_extension_anchors() {
        let yaml = "x-env: &env\n  A: from-anchor\n  B: ${B}\nx-more: &more\n  C: more\n  A: not-this\n\
                    x-service: &svc\n  image: reg/app:1\n  environment:\n    <<: [*env, *more]\n    A: explicit\n\
                    services:\n  a:\n    <<: *svc\n    command: [run]\n";
        let s = service(yaml, "a");
        assert_eq!(values(&s.image), [lit("reg/app:1")]);
        assert_eq!(env(&s, "A"), &lit("explicit"));
        assert!(source(env(&s, "B")).contains("${B}"));
        assert_eq!(env(&s, "C"), &lit("more"));
    }

    #[test]
    fn documents_extends_include_and_reset() {
        let yaml = r#"
services:
  base:
    image: reg/base:1
    environment:
      A: base
      B: base
    command: [run]
  a:
    extends: base
    environment:
      B: own
    env_file: own.env
  b:
    extends:
      file: other.yml
      service: x
---
services:
  a:
    environment:
      C: ${C}
    env_file: later.env
"#;
        let compose = read(&app_compose(yaml, &[])).unwrap();
        let a = compose.services.iter().find(|s| s.name == "a").unwrap();
        assert_eq!(values(&a.image), [lit("reg/base:1")]);
        assert_eq!(values(a.command.iter().flatten()), [lit("run")]);
        assert_eq!(env(a, "A"), &lit("base"));
        assert_eq!(env(a, "B"), &lit("own"));
        assert!(source(env(a, "C")).contains("${C}"), "a later document adds to the service");
        assert_eq!(a.env_files, ["own.env", "later.env"]);
        assert!(a.outside.iter().any(|o| o.contains("extends service base of this file")));
        let b = compose.services.iter().find(|s| s.name == "b").unwrap();
        assert!(b.outside.iter().any(|o| o.contains("\"other.yml\"") && o.contains("outside")), "{:?}", b.outside);

        let included = read(&app_compose("include:\n  - other.yml\nservices:\n  a:\n    image: x\n", &[])).unwrap();
        assert!(included.outside[0].contains("other.yml"));
        let cycle = "services:\n  a:\n    extends: b\n  b:\n    extends: a\n";
        assert!(read(&app_compose(cycle, &[])).is_err());

        let reset = service(
            "services:\n  a:\n    environment:\n      A: !reset x\n      B: y\n    command: !reset [run]\n",
            "a",
        );
        assert_eq!(reset.environment, [("B".to_string(), lit("y"))]);
        assert_eq!(reset.command, None);
    }

    #[test]
    fn dstack_fields() {
        let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
        let pre = json(serde_json::json!({"docker_compose_file": "services: {}", "pre_launch_script": "echo hi"}));
        assert!(read(&pre).unwrap().outside[0].contains("pre_launch_script"));
        let init = json(serde_json::json!({"docker_compose_file": "services: {}", "init_script": ["", "x"]}));
        assert!(read(&init).unwrap().outside[0].contains("init_script"));
        let empty = json(serde_json::json!({"docker_compose_file": "services: {}", "pre_launch_script": ""}));
        assert!(read(&empty).unwrap().outside.is_empty());
        let blank = json(serde_json::json!({"docker_compose_file": "services: {}", "init_script": [" ", null]}));
        assert!(read(&blank).unwrap().outside.is_empty());
        let number = json(serde_json::json!({"docker_compose_file": "services: {}", "init_script": 0}));
        assert!(read(&number).unwrap().outside[0].contains("init_script"));
        let null = json(serde_json::json!({"docker_compose_file": "services: {}", "allowed_envs": null}));
        assert!(read(&null).unwrap().allowed_envs.is_empty());
        let bash = json(serde_json::json!({"runner": "bash", "docker_compose_file": "services: {}"}));
        assert!(read(&bash).is_err());
        let nerdctl = json(serde_json::json!({"runner": "nerdctl-compose", "docker_compose_file": "services: {}"}));
        assert!(read(&nerdctl).is_ok());
        let launcher = read(&app_compose("services: {}", &["COMPOSE_FILE", "REPLICATOOR_RPC_URL"])).unwrap();
        assert_eq!(launcher.outside.len(), 1);
        assert!(launcher.outside[0].contains("COMPOSE_FILE"));
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        let raw: [&[u8]; 6] = [
            b"not json",
            b"[1, 2]",
            b"{}",
            br#"{"docker_compose_file": 3}"#,
            br#"{"docker_compose_file": "services: {}", "allowed_envs": [1]}"#,
            br#"{"docker_compose_file": "services: {}", "allowed_envs": "X"}"#,
        ];
        for bytes in raw {
            assert!(read(bytes).is_err(), "{}", String::from_utf8_lossy(bytes));
        }
        for yaml in [
            "- a\n- b\n",
            "services: [a, b]\n",
            "services:\n  a: [x]\n",
            "services:\n  a:\n    environment: 3\n",
            "services:\n  a:\n    environment:\n      A: [1]\n",
            "services:\n  a:\n    environment:\n      - [1]\n",
            "services:\n  a:\n    environment:\n      - 1\n",
            "services:\n  a:\n    env_file: {path: a.env}\n",
            "services:\n  a:\n    command: {x: 1}\n",
            "services:\n  a:\n    command: [[run]]\n",
            "services:\n  a:\n    image: [x]\n",
            "services:\n  a:\n    extends: [x]\n",
            "services:\n  a:\n    extends: missing\n",
            "services:\n  a:\n    <<: 3\n",
            "services:\n  a: &a\n    b: *a\n",
            "services:\n  a:\n  a:\n",
            "services:\n  a: {image: x\n",
            "services:\n  a:\n    image: ${\n",
            "services:\n  a:\n    <<: *nowhere\n",
            "---\n",
            "? [a]\n: b\n",
        ] {
            let result = read(&app_compose(yaml, &[]));
            assert!(result.is_err(), "{yaml:?} read as {result:?}");
        }
        assert!(read(&app_compose("", &[])).unwrap().services.is_empty());
    }
}
