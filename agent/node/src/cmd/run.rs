//! `replicatoor run`: resolve the configuration, then run the agent until it is done or asked to stop.

use super::{EXIT_BAD_CONFIG, EXIT_REFUSED};
use crate::{
    config::RunArgs,
    roles::{self, Exit},
};
use std::process::ExitCode;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(target: "replicatoor", "shutdown requested; finishing the current step");
        let _ = tx.send(true);
    });
    match roles::run(cfg, rx).await? {
        Exit::Done => Ok(ExitCode::SUCCESS),
        Exit::Refused { code } => {
            match replicatoor_core::refusal::Refusal::from_code(code) {
                Some(r) => eprintln!("request refused by the cluster: {r}"),
                None => eprintln!("request refused by the cluster with code {code}, unknown to this version"),
            }
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
