//! The measurements we read from a TDX quote (v4 and v5, TD 1.0/1.5 reports).

use dcap_qvl::quote::{Quote, Report};

/// Bytes that dcap-qvl cannot parse as a quote (its message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnparsableQuote(pub String);

/// Measurements of a TD, copied out of its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    /// MRTD: the TD's initial memory (firmware); part of the OS reference.
    pub mr_td: [u8; 48],
    /// RTMR0-3: RTMR0-2 measure the boot chain (OS reference); RTMR3 is replayed from the event log.
    pub rtmr: [[u8; 48]; 4],
    /// MRCONFIGID: may bind the compose hash (`0x01 ‖ composeHash ‖ zeros`).
    pub mr_config_id: [u8; 48],
    /// MROWNER: chosen by whoever launches the TD; Dstack leaves it zero and nothing here reads it.
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG: likewise launch-chosen, unused by Dstack and by this protocol.
    pub mr_owner_config: [u8; 48],
    /// The 64 bytes the TD chose to bind (a request's or genesis binding, PROTOCOL.md §3.1).
    pub report_data: [u8; 64],
    /// TD attributes (byte 0: DEBUG and the profiling TUD bits the policy judges).
    pub td_attributes: [u8; 8],
    /// XFAM: the CPU extended features the TD may use.
    pub xfam: [u8; 8],
}

impl Measurements {
    /// Extract from a parsed quote; `None` if the report is not a TD report.
    pub fn from_report(report: &Report) -> Option<Measurements> {
        let td = report.as_td10()?;
        Some(Measurements {
            mr_td: td.mr_td,
            rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
            mr_config_id: td.mr_config_id,
            mr_owner: td.mr_owner,
            mr_owner_config: td.mr_owner_config,
            report_data: td.report_data,
            td_attributes: td.td_attributes,
            xfam: td.xfam,
        })
    }

    /// Parse a posted quote (raw or compact, PROTOCOL.md §3.9) without verifying it:
    /// `(version, tee_type, measurements)`, for `measure` and reference proposals; never for decisions.
    pub fn parse_unverified(posted: &[u8]) -> Result<(u16, u32, Option<Measurements>), UnparsableQuote> {
        let raw = replicatoor_compact_quote::to_raw(posted).map_err(|e| UnparsableQuote(e.to_string()))?;
        let q = Quote::parse(&raw).map_err(|e| UnparsableQuote(format!("{e:#}")))?;
        Ok((q.header.version, q.header.tee_type, Measurements::from_report(&q.report)))
    }

    /// The TD DEBUG attribute (TUD bit 0).
    pub fn is_debug(&self) -> bool {
        self.td_attributes[0] & 0x01 != 0
    }

    /// The OS reference id of these measurements (MRTD, RTMR0-2).
    pub fn os_reference_id(&self) -> alloy::primitives::B256 {
        crate::protocol::os_reference_id(&self.mr_td, &self.rtmr[0], &self.rtmr[1], &self.rtmr[2])
    }

    /// The compose hash bound in mr_config_id (`0x01 ‖ composeHash ‖ zeros`), if this TD uses that binding.
    pub fn config_id_compose_hash(&self) -> Option<[u8; 32]> {
        self.mr_config_id[1..33].try_into().ok().filter(|_| self.mr_config_id[0] == 0x01)
    }
}
