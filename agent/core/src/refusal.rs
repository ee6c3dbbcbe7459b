//! Why a request was refused: one enum shared by the holder pipeline, the contract (`reason` codes),
//! the audit report and the tests. Codes are part of the protocol (PROTOCOL.md §5.2).

use std::fmt;

/// A reason a holder refuses a request on chain. The numeric value is the on-chain `reason` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Refusal {
    /// The quote cannot be parsed (truncated, garbage, unknown layout).
    QuoteMalformed = 1,
    /// DCAP verification failed: signature, certificate chain, CRLs, QE identity or collateral.
    QuoteInvalid = 2,
    /// Not a TDX quote (e.g. SGX), or an unsupported quote version.
    WrongTeeType = 3,
    /// The platform's TCB status (including Revoked) is not accepted by the contract's policy.
    TcbStatusNotAccepted = 4,
    /// The TD runs in debug mode and the policy does not allow debug TDs.
    DebugTdNotAllowed = 5,
    /// The quote is signed by the simulated PKI and simulated quotes are not allowed.
    SimulatedQuoteNotAllowed = 6,
    /// report_data does not bind this request's key, chain and contract.
    ReportDataMismatch = 7,
    /// The event log cannot be decoded or lacks the compose-hash event.
    EventLogMalformed = 8,
    /// Replaying the event log does not give the quote's RTMR3.
    Rtmr3Mismatch = 9,
    /// mr_config_id binds a compose hash different from the event log's.
    ComposeHashMismatch = 10,
    /// The OS measurement (MRTD, RTMR0-2) is not an allowed reference now.
    OsReferenceNotAllowed = 11,
    /// The app measurement (compose-hash) is not an allowed reference now.
    AppReferenceNotAllowed = 12,
    /// The HPKE public key is not a usable X25519 key (e.g. a low-order point).
    InvalidPublicKey = 13,
    /// TD attributes enable debug-class features (profiling) and the policy does not allow debug TDs.
    TdAttributesNotAccepted = 14,
}

impl Refusal {
    /// Every reason, in code order.
    pub const ALL: [Refusal; 14] = [
        Refusal::QuoteMalformed,
        Refusal::QuoteInvalid,
        Refusal::WrongTeeType,
        Refusal::TcbStatusNotAccepted,
        Refusal::DebugTdNotAllowed,
        Refusal::SimulatedQuoteNotAllowed,
        Refusal::ReportDataMismatch,
        Refusal::EventLogMalformed,
        Refusal::Rtmr3Mismatch,
        Refusal::ComposeHashMismatch,
        Refusal::OsReferenceNotAllowed,
        Refusal::AppReferenceNotAllowed,
        Refusal::InvalidPublicKey,
        Refusal::TdAttributesNotAccepted,
    ];

    /// The on-chain reason code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason for an on-chain code, if it is one we know.
    pub fn from_code(code: u8) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A stable snake_case name for logs, metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::QuoteMalformed => "quote_malformed",
            Refusal::QuoteInvalid => "quote_invalid",
            Refusal::WrongTeeType => "wrong_tee_type",
            Refusal::TcbStatusNotAccepted => "tcb_status_not_accepted",
            Refusal::DebugTdNotAllowed => "debug_td_not_allowed",
            Refusal::SimulatedQuoteNotAllowed => "simulated_quote_not_allowed",
            Refusal::ReportDataMismatch => "report_data_mismatch",
            Refusal::EventLogMalformed => "event_log_malformed",
            Refusal::Rtmr3Mismatch => "rtmr3_mismatch",
            Refusal::ComposeHashMismatch => "compose_hash_mismatch",
            Refusal::OsReferenceNotAllowed => "os_reference_not_allowed",
            Refusal::AppReferenceNotAllowed => "app_reference_not_allowed",
            Refusal::InvalidPublicKey => "invalid_public_key",
            Refusal::TdAttributesNotAccepted => "td_attributes_not_accepted",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_dense() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.code() as usize, i + 1);
            assert_eq!(Refusal::from_code(r.code()), Some(*r));
        }
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(15), None);
    }
}
