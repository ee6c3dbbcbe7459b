//! `replicatoor run`: resolve the configuration, then run the agent until it is done or asked to stop.

use super::{EXIT_BAD_CONFIG, EXIT_REFUSED};
use crate::{
    config::{
        measured::{self, MeasureFailure},
        RunArgs, RunConfig,
    },
    roles::{self, Exit},
};
use std::process::ExitCode;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Measured configuration first: with the dstack provider, the settings are checked against (and
    // completed from) the compose this CVM measured before anything else happens.
    let (settings, measurement) = match measured::resolve(args).await {
        Ok(r) => r,
        Err(MeasureFailure::NoGuestAgent(why)) => {
            eprintln!("configuration error: cannot read this node's measured configuration: {why}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
        Err(MeasureFailure::Refused(errors)) => {
            for e in errors {
                eprintln!("configuration error: {e}");
            }
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let cfg = match settings.validate() {
        Ok(c) => RunConfig { measurement, ..c },
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
