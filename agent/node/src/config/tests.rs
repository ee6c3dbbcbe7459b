//! The environment layer is tested through the binary (tests/tests/deploy.rs): these tests parse blind to
//! the environment, so the caller's REPLICATOOR_* variables cannot change their outcome.

use super::*;
use crate::cli::{Cli, Command};
use clap::CommandFactory;

const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn without_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.env(None::<&str>)).mut_subcommands(without_env)
}

/// Parse a command line as the binary does, environment ignored.
fn parse(args: &[&str]) -> Cli {
    let m = without_env(Cli::command()).try_get_matches_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Cli::from_arg_matches(&m).unwrap()
}

/// `replicatoor run <extra>`.
fn run(extra: &[&str]) -> RunArgs {
    let args: Vec<&str> = ["replicatoor", "run"].iter().chain(extra).copied().collect();
    match parse(&args).command {
        Command::Run(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

/// A pinned deployment (an RPC quorum: valid in every build, with no beacon URL needed).
const PIN: &str = "chain_id = 31337\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 0\n\
                   [trust]\nmode = \"quorum\"\nrpcs = [\"https://a.example\", \"https://b.example\", \
                   \"https://c.example\"]\nquorum = 2\n";

/// The settings every valid configuration needs.
const REQUIRED: [&str; 12] = [
    "--rpc-url",
    "http://127.0.0.1:8545",
    "--contract",
    "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "--state-dir",
    "/tmp/x",
    "--secret-file",
    "/tmp/x/secret",
    "--sender-key",
    KEY,
    "--deployment",
    PIN,
];

fn base() -> Settings {
    run(&REQUIRED).settings
}

#[test]
fn default_equals_parsing_no_flags() {
    let a = run(&[]);
    assert_eq!(a.settings, Settings::default());
    assert!(a.explicit.is_empty() && a.config.is_none());
    match parse(&["replicatoor", "config", "check"]).command {
        Command::Config(crate::cmd::config::ConfigCommand::Check(c)) => assert_eq!(c.run.settings, Settings::default()),
        other => panic!("parsed as {other:?}"),
    }
    // With the required settings, everything else is the default.
    let full = run(&REQUIRED);
    let expected = Settings {
        rpc_url: Some("http://127.0.0.1:8545".into()),
        contract: Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into()),
        state_dir: Some("/tmp/x".into()),
        secret_file: Some("/tmp/x/secret".into()),
        sender_key: Some(KEY.parse().unwrap()),
        deployment: Some(PIN.into()),
        ..Settings::default()
    };
    assert_eq!(full.settings, expected);
    let flags: BTreeSet<String> =
        ["rpc_url", "contract", "state_dir", "secret_file", "sender_key", "deployment"].map(String::from).into();
    assert_eq!(full.explicit, flags);
}

#[test]
fn defaults_are_strict() {
    let d = Settings::default();
    assert_eq!(d.quote_provider, ProviderKind::Dstack);
    assert!(!d.allow_simulated_quotes && !d.allow_insecure_rpc && !d.genesis && !d.exit_after_install);
    assert!(!d.dangerously_trust_rpc && d.deployment.is_none());
    assert_eq!((d.confirmations, d.start_block, d.poll_interval_ms, d.jitter_ms), (2, 0, 1000, 400));
    assert_eq!((d.max_refusals_per_step, d.max_refusal_gas_per_hour), (16, 8_000_000));
    assert_eq!(d.backup_delay_blocks, 3);
    assert!(d.rpc_url.is_none() && d.contract.is_none() && d.sender_key.is_none() && d.generate_secret.is_none());
    assert!(d.witness_rpc_urls.is_empty() && d.collateral_dir.is_none() && d.dstack_socket.is_none());

    let c = base().validate().unwrap();
    assert_eq!(c.quote_provider, ProviderKind::Dstack);
    assert!(!c.allow_simulated_quotes);
    assert_eq!(c.confirmations, 2);
    assert_eq!(c.pccs_url.as_deref(), Some(dcap_qvl::collateral::PHALA_PCCS_URL));
    assert_eq!(c.http_addr, Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
}

#[test]
fn help_shows_every_default() {
    let mut cli = Cli::command();
    let run = cli.find_subcommand_mut("run").expect("run");
    let help = run.render_long_help().to_string();
    let mut shown = 0;
    for arg in run.get_arguments().filter(|a| a.get_action().takes_values()) {
        for v in arg.get_default_values() {
            let want = format!("[default: {}]", v.to_string_lossy());
            assert!(help.contains(&want), "--{:?}: {want} missing from run --help", arg.get_long());
            shown += 1;
        }
    }
    // start_block, quote_provider, pccs_url, confirmations, poll_interval_ms, jitter_ms, max_refusals, http_addr
    assert!(shown >= 8, "only {shown} defaults shown");
    assert!(help.contains("[default: 127.0.0.1:9090]") && help.contains("[default: dstack]"), "{help}");
}

#[test]
fn sender_key_is_never_shown() {
    let a = run(&REQUIRED);
    let shown = format!("{a:?} {:?}", a.settings.clone().validate().unwrap());
    assert!(!shown.contains(KEY.trim_start_matches("0x")), "{shown}");
    assert!(Cli::command()
        .find_subcommand_mut("run")
        .unwrap()
        .render_long_help()
        .to_string()
        .contains("[env: REPLICATOOR_SENDER_KEY]"));
}

/// Plain-http URLs that look local to a prefix check but reach another host (or are not loopback).
const NOT_LOOPBACK: [&str; 12] = [
    "http://127.0.0.1@evil.example",
    "http://127.0.0.1:8545@evil.example",
    "http://localhost:8545@evil.example/rpc",
    "http://127.0.0.1@evil",
    "http://localhost.evil.example",
    "http://127.evil.example",
    "http://127.0.0.1.evil.example",
    "http://[2001:db8::1]:8545",
    "http://[::ffff:7f00:1]",
    "http://LOCALHOST.evil.example",
    "http://localhost./rpc",
    "http://[::]:8545",
];

/// Loopback written in forms a prefix check misses (same host to the HTTP client).
const LOOPBACK: [&str; 6] = [
    "http://[::1]:8545",
    "HTTP://127.0.0.1:8545",
    "http://LOCALHOST:8545",
    "http://127.0.0.1.:8545",
    "http://127.1.2.3",
    "http://localhost",
];

#[test]
fn url_checks_compare_the_parsed_host_exactly() {
    for u in NOT_LOOPBACK {
        let mut a = base();
        a.rpc_url = Some(u.into());
        assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "rpc_url", .. })), "rpc_url {u}");
        let mut a = base();
        a.witness_rpc_urls = vec![u.into()];
        assert!(a.validate().is_err(), "witness {u}");
        let mut a = base();
        a.pccs_url = u.into();
        assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "pccs_url", .. })), "pccs_url {u}");
    }
    for u in LOOPBACK {
        let mut a = base();
        a.rpc_url = Some(u.into());
        a.pccs_url = u.into();
        a.witness_rpc_urls = vec!["https://w.example.com".into()];
        a.validate().unwrap_or_else(|e| panic!("{u}: {e}"));
    }
    let mut a = base();
    a.rpc_url = Some("HTTPS://rpc.example.com".into());
    a.validate().expect("an upper-case https scheme is https");
    for u in ["ftp://127.0.0.1", "127.0.0.1:8545", "https//rpc.example.com"] {
        let mut a = base();
        a.rpc_url = Some(u.into());
        a.allow_insecure_rpc = true;
        assert!(a.validate().is_err(), "{u} is no http(s) URL, insecure or not");
    }
}

#[test]
fn rejects_insecure_remote_rpc_and_bad_values() {
    let mut a = base();
    a.rpc_url = Some("http://rpc.example.com".into());
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "rpc_url", .. })));
    let mut a = base();
    a.sender_key = Some("nope".parse().unwrap());
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "sender_key", .. })));
    let mut a = base();
    a.generate_secret = Some(10);
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "generate_secret", .. })));
    let mut a = base();
    a.quote_provider = ProviderKind::Simulated;
    if crate::simulated::BUILT {
        assert!(matches!(a.validate(), Err(ConfigError::Missing("app_compose", ..))));
    } else {
        assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "quote_provider", .. })), "a release build");
    }
    let mut a = base();
    a.rpc_url = None;
    assert!(matches!(a.validate(), Err(ConfigError::Missing("rpc_url", ..))));
    let mut a = base();
    a.pccs_url = "http://pccs.example.com".into();
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "pccs_url", .. })));
    let mut a = base();
    a.http_addr = "not-an-addr".into();
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "http_addr", .. })));
    // No pin: refused unless the operator says, explicitly, to trust the RPC; never both.
    let mut a = base();
    a.deployment = None;
    assert!(matches!(a.clone().validate(), Err(ConfigError::Invalid { key: "deployment", .. })));
    a.dangerously_trust_rpc = true;
    assert!(a.validate().unwrap().deployment.is_none());
    let mut a = base();
    a.dangerously_trust_rpc = true;
    assert!(matches!(a.validate(), Err(ConfigError::Invalid { key: "dangerously_trust_rpc", .. })));
    let mut a = base();
    a.http_addr = "off".into();
    a.pccs_url = "off".into();
    let c = a.validate().unwrap();
    assert_eq!((c.http_addr, c.pccs_url), (None, None));
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("replicatoor-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        TempFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn file_fills_what_flags_leave_out() {
    let f = TempFile::new("fills", "confirmations = 5\njitter_ms = 7\nrpc_url = \"https://rpc.example.com\"\n");
    let mut args = REQUIRED.to_vec();
    args.extend(["--config", f.path(), "--jitter-ms", "9"]);
    let c = run(&args).resolve().unwrap();
    assert_eq!(c.confirmations, 5);
    assert_eq!(c.jitter_ms, 9, "flag beats file");
    assert_eq!(c.rpc_url, "http://127.0.0.1:8545", "flag beats file");
    std::fs::write(&f.0, "bogus_key = 1\n").unwrap();
    assert!(matches!(run(&args).resolve(), Err(ConfigError::File { .. })));
}

#[test]
fn file_beats_defaults_for_every_kind_of_setting() {
    let toml = format!(
        "rpc_url = \"http://rpc.example.com\"\nallow_insecure_rpc = true\ncontract = \
         \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstate_dir = \"/s\"\nsecret_file = \"/s/k\"\nsender_key = \
         \"{KEY}\"\ngenesis = true\ngenerate_secret = 32\nquote_provider = \"simulated\"\napp_compose = \"/a.json\"\n\
         witness_rpc_urls = [\"https://w1.example.com\", \"https://w2.example.com\"]\npccs_url = \"off\"\n\
         http_addr = \"off\"\nstart_block = 42\npoll_interval_ms = 60\nmax_refusals_per_step = 3\n\
         dangerously_trust_rpc = true\n"
    );
    let f = TempFile::new("kinds", &toml);
    let a = run(&["--config", f.path()]);
    assert!(a.explicit.is_empty(), "{:?}", a.explicit);
    let s = a.layered().unwrap();
    assert!(s.allow_insecure_rpc && s.genesis && s.dangerously_trust_rpc);
    assert_eq!((s.quote_provider, s.generate_secret, s.start_block), (ProviderKind::Simulated, Some(32), 42));
    assert_eq!(s.witness_rpc_urls, ["https://w1.example.com", "https://w2.example.com"]);
    // The file asks for simulated quotes: valid only in a build that has them (the workspace's tests).
    if crate::simulated::BUILT {
        let c = s.validate().expect("the file alone is a valid configuration");
        assert_eq!((c.http_addr, c.pccs_url, c.poll_interval_ms, c.max_refusals_per_step), (None, None, 60, 3));
        assert_eq!(c.sender_key.address(), KEY.parse::<crate::args::SecretKey>().unwrap().signer().unwrap().address());
    } else {
        assert!(matches!(
            s.validate(),
            Err(ConfigError::Invalid { key: "allow_simulated_quotes" | "quote_provider", .. })
        ));
    }

    // A flag beats the file for every kind too: list, enum, bool switched on, number.
    let a = run(&[
        "--config",
        f.path(),
        "--witness-rpc-url",
        "https://w3.example.com",
        "--quote-provider",
        "dstack",
        "--exit-after-install",
        "--start-block",
        "7",
    ]);
    let s = a.layered().unwrap();
    assert_eq!(s.witness_rpc_urls, ["https://w3.example.com"]);
    assert_eq!((s.quote_provider, s.start_block, s.exit_after_install), (ProviderKind::Dstack, 7, true));
    assert!(s.genesis, "what the flags leave out still comes from the file");
}

#[test]
fn file_errors_name_the_file_and_the_problem() {
    for (toml, want) in [
        ("confirmations = \"two\"\n", "confirmations"),
        ("config = \"other.toml\"\n", "unknown field `config`"),
        ("rpc_url = \n", "config file"),
    ] {
        let f = TempFile::new("errors", toml);
        match run(&["--config", f.path()]).resolve() {
            Err(e @ ConfigError::File { .. }) => {
                let text = e.to_string();
                assert!(text.contains(f.path()) && text.contains(want), "{toml:?}: {text}");
            }
            other => panic!("{toml:?}: {other:?}"),
        }
    }
    let missing = run(&["--config", "/nonexistent/replicatoor.toml"]).resolve();
    assert!(matches!(missing, Err(ConfigError::File { .. })), "{missing:?}");
}
