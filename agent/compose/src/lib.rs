//! Measured configuration. A Dstack CVM measures its app-compose.json into RTMR3 (the compose hash the
//! contract approves); everything else a node is given (flags, environment, files, the clock) is the
//! machine operator's. This crate says which of the agent's settings an app-compose.json fixes:
//!
//! - [`settings`]: the one table of the agent's settings, each classed as transport (the operator's by
//!   design: URLs, the sender key, ports, logs), the node's role (genesis), or security-relevant (the
//!   default: it must be written literally in the compose, or left at its default).
//! - [`reader`]: the compose read as Docker Compose (compose-go) reads it: every YAML document, anchors,
//!   merge keys and `!reset`, `environment` as map or list, `${VAR}` interpolation, `env_file`,
//!   `extends`, `command`/`entrypoint` in exec and string form; and what Dstack's launcher adds (scripts,
//!   `allowed_envs`). Its two text rules (interpolation, go-shellwords splitting) live in `words`, the
//!   YAML tree in `yaml`.
//! - [`agent`]: the agent's own service, found by one rule, and where each of its settings comes from.
//!
//! Pure (bytes in, values out): the node checks its own configuration against it (`run`, `config
//! check`), and `measure` and `audit` report on any compose with it, so all three read alike.

pub mod agent;
pub mod reader;
pub mod settings;
mod words;
mod yaml;
