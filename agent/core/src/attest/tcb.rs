//! TCB statuses and the policy bitmask the contract stores over them.

use std::{fmt, str::FromStr};

/// A platform TCB status as Intel's TCB info names it (and dcap-qvl reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
    TDRelaunchAdvised,
    TDRelaunchAdvisedConfigurationNeeded,
}

impl TcbStatus {
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

    /// Bit index in the contract's `Policy.tcbStatuses` mask (PROTOCOL.md §Policy).
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether `mask` accepts this status. Revoked is never accepted, whatever the mask says.
    pub fn accepted_by(self, mask: u16) -> bool {
        self != TcbStatus::Revoked && mask & self.bit() != 0
    }

    /// The statuses a mask accepts.
    pub fn in_mask(mask: u16) -> Vec<TcbStatus> {
        TcbStatus::ALL.into_iter().filter(|s| s.accepted_by(mask)).collect()
    }

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TcbStatus::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| format!("unknown TCB status {s:?}"))
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
        assert_eq!(TcbStatus::in_mask(1), vec![TcbStatus::UpToDate]);
        for s in TcbStatus::ALL {
            assert_eq!(s.name().parse::<TcbStatus>().unwrap(), s);
        }
    }
}
