//! The measurements we read from a TDX quote (v4 and v5, TD 1.0/1.5 reports).

use dcap_qvl::quote::{Quote, Report};

pub use super::consts::TEE_TYPE_TDX;

/// Bytes that dcap-qvl cannot parse as a quote (its message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnparsableQuote(pub String);

/// Measurements of a TD, copied out of its report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Measurements {
    /// MRTD: the TD's initial memory (firmware); part of the OS reference.
    #[serde(with = "hex_bytes")]
    pub mr_td: [u8; 48],
    /// RTMR0-3: RTMR0-2 measure the boot chain (OS reference); RTMR3 is replayed from the event log.
    #[serde(with = "hex_rtmrs")]
    pub rtmr: [[u8; 48]; 4],
    /// MRCONFIGID: may bind the compose hash (`0x01 ‖ composeHash ‖ zeros`).
    #[serde(with = "hex_bytes")]
    pub mr_config_id: [u8; 48],
    /// MROWNER: chosen by whoever launches the TD; Dstack leaves it zero and nothing here reads it.
    #[serde(with = "hex_bytes")]
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG: likewise launch-chosen, unused by Dstack and by this protocol.
    #[serde(with = "hex_bytes")]
    pub mr_owner_config: [u8; 48],
    /// The 64 bytes the TD chose to bind (a request's or genesis binding, PROTOCOL.md §3.1).
    #[serde(with = "hex_bytes")]
    pub report_data: [u8; 64],
    /// TD attributes (byte 0: DEBUG and the profiling TUD bits the policy judges).
    #[serde(with = "hex_bytes")]
    pub td_attributes: [u8; 8],
    /// XFAM: the CPU extended features the TD may use.
    #[serde(with = "hex_bytes")]
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

    /// The names of the TD attribute bits set (Intel TDX module ABI, `ATTRIBUTES`, little-endian
    /// u64), for display; a set bit without a name shows as `bitN`.
    pub fn td_attribute_names(&self) -> Vec<String> {
        const NAMES: [(u32, &str); 13] = [
            (0, "DEBUG"),
            (4, "HGS_PLUS_PROF"),
            (5, "PERF_PROF"),
            (6, "PMT_PROF"),
            (16, "ICSSD"),
            (17, "SERVTD_EXT"),
            (27, "LASS"),
            (28, "SEPT_VE_DISABLE"),
            (29, "MIGRATABLE"),
            (30, "PKS"),
            (31, "KL"),
            (62, "TPA"),
            (63, "PERFMON"),
        ];
        let bits = u64::from_le_bytes(self.td_attributes);
        (0..64)
            .filter(|i| bits & (1u64 << i) != 0)
            .map(|i| NAMES.iter().find(|(b, _)| *b == i).map_or_else(|| format!("bit{i}"), |(_, n)| (*n).to_string()))
            .collect()
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
        if self.mr_config_id[0] != 0x01 {
            return None;
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.mr_config_id[1..33]);
        Some(out)
    }
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

mod hex_rtmrs {
    pub(super) fn serialize<S: serde::Serializer>(v: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(4))?;
        for r in v {
            seq.serialize_element(&hex::encode(r))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::Measurements;

    #[test]
    fn td_attribute_bits_are_named_in_the_little_endian_order_of_the_report() {
        let with = |td_attributes: [u8; 8]| Measurements {
            mr_td: [0; 48],
            rtmr: [[0; 48]; 4],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            report_data: [0; 64],
            td_attributes,
            xfam: [0; 8],
        };
        // DEBUG (bit 0), SEPT_VE_DISABLE (bit 28 = byte 3, 0x10), PERFMON (bit 63).
        assert_eq!(
            with([0x01, 0, 0, 0x10, 0, 0, 0, 0x80]).td_attribute_names(),
            ["DEBUG", "SEPT_VE_DISABLE", "PERFMON"]
        );
        // A reserved bit has no name but is not hidden.
        assert_eq!(with([0x04, 0, 0, 0, 0, 0, 0, 0]).td_attribute_names(), ["bit2"]);
        assert!(with([0; 8]).td_attribute_names().is_empty());
    }
}
