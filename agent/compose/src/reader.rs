//! An app-compose.json read as Docker Compose reads its `docker_compose_file`: every value either
//! written literally in the measured bytes, or marked with where the operator can change it.
//! (API fixed; implementation: see the module's functions.)

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Value {
    /// Written literally in the measured bytes (after YAML anchors and merge keys, with `$$` read as `$`).
    Literal { value: String },
    /// Chosen, wholly or in part, by the machine's operator; `source` says how (`${RPC} substituted
    /// from the operator's environment`, `passed through from the operator's environment`, `env_file
    /// agent.env`, `listed in allowed_envs`, `a shell expands $EXTRA at run time`, ...).
    Operator { source: String },
}

/// One service of the compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// `image`, if any.
    pub image: Option<Value>,
    /// `environment` (map or list form, merge keys resolved), in file order; a key listed in
    /// `allowed_envs` or passed through without a value is `Value::Operator`.
    pub environment: Vec<(String, Value)>,
    /// `env_file` entries: every variable in them is the operator's.
    pub env_files: Vec<String>,
    /// `entrypoint` then `command`, as the argument vector the container starts with (exec form as is;
    /// string form split as Compose splits it, without a shell). None where neither is set (the image's
    /// own ENTRYPOINT and CMD apply).
    pub entrypoint: Option<Vec<Value>>,
    pub command: Option<Vec<Value>>,
    /// Other ways values reach this service from outside the measured bytes (`extends` from another
    /// file, ...), each said in a sentence.
    pub outside: Vec<String>,
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

/// Read an app-compose.json (Dstack's format: the compose file is the `docker_compose_file` string).
pub fn read(app_compose: &[u8]) -> Result<AppCompose, ComposeError> {
    let _ = app_compose;
    Err(ComposeError::Shape("not implemented yet".into()))
}
