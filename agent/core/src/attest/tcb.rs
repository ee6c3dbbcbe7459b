//! TCB statuses and the policy bitmask the contract stores over them.

use std::{fmt, str::FromStr};

/// A platform TCB status as Intel's TCB info names it (and dcap-qvl reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TcbStatus {
    /// The platform is patched.
    UpToDate,
    /// Patched, but software mitigations are needed for some advisories.
    SWHardeningNeeded,
    /// Patched, but the platform configuration needs a change.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// Microcode or TDX module is out of date: known vulnerabilities apply.
    OutOfDate,
    /// Out of date and misconfigured.
    OutOfDateConfigurationNeeded,
    /// The platform's keys are revoked: never accepted.
    Revoked,
    /// A TDX module update needs the TD to be relaunched to take effect.
    TDRelaunchAdvised,
    /// Relaunch advised and the configuration needs a change.
    TDRelaunchAdvisedConfigurationNeeded,
}

/// A TCB status name Intel's TCB info (or dcap-qvl) reported that this kernel does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TCB status {0:?}")]
pub struct UnknownTcbStatus(pub String);

impl TcbStatus {
    /// Every status, in the contract's bit order.
    pub const ALL: [TcbStatus; 9] = [
        TcbStatus::UpToDate,
        TcbStatus::SWHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSWHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::Revoked,
        TcbStatus::TDRelaunchAdvised,
        TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
    ];

    /// Bit index in the contract's `Policy.tcbStatuses` mask (PROTOCOL.md §4.4).
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether `mask` accepts this status. Revoked is never accepted, whatever the mask says.
    pub fn accepted_by(self, mask: u16) -> bool {
        self != TcbStatus::Revoked && mask & self.bit() != 0
    }

    /// Intel's name for the status (also the JSON and log form).
    pub fn name(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
            TcbStatus::TDRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TcbStatus {
    type Err = UnknownTcbStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TcbStatus::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| UnknownTcbStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_the_contract_layout() {
        assert_eq!(TcbStatus::UpToDate.bit(), 1);
        assert_eq!(TcbStatus::OutOfDateConfigurationNeeded.bit(), 1 << 5);
        assert_eq!(TcbStatus::Revoked.bit(), 1 << 6);
        assert_eq!(TcbStatus::TDRelaunchAdvisedConfigurationNeeded.bit(), 1 << 8);
        // Revoked is never accepted, even by an all-ones mask.
        assert!(!TcbStatus::Revoked.accepted_by(u16::MAX));
        assert!(TcbStatus::ALL.into_iter().filter(|s| s.accepted_by(1)).eq([TcbStatus::UpToDate]));
        for s in TcbStatus::ALL {
            assert_eq!(s.name().parse::<TcbStatus>().unwrap(), s);
        }
    }
}
