//! The JSON report, written after a run and read back by `merge` and `compare`: one
//! format, named once ([`FORMAT`]), with every histogram in HdrHistogram's standard
//! compressed V2 encoding, base64 (what HdrHistogram's own decoders in Java, Python and
//! JavaScript read, and what the `--hdr-log` lines carry), so runs merge exactly and other
//! tools can read the histograms as they are. Reports written with the uncompressed form
//! are still read.
//!
//! - [`write`]: the report a run or a merge writes.
//! - [`read`]: a report read back into [`crate::results::Results`], every field checked.

pub mod read;
pub mod write;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// The `format` field of the reports this version writes and reads.
pub const FORMAT: &str = "loadgen-report-v1";

/// Encodes a histogram as HdrHistogram V2, deflate-compressed, base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
        Err(_) => String::new(),
    }
}

/// HdrHistogram V2 cookies (uncompressed and deflate-compressed).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Size of a V2 header: cookie, payload length, normalising offset, significant digits,
/// lowest, highest, integer-to-double ratio.
const V2_HEADER: usize = 40;
/// Largest encoded histogram read: one of our bounds takes at most a few hundred KiB.
pub const MAX_HDR_BYTES: usize = 4 * 1024 * 1024;

/// The uncompressed V2 bytes of `raw`: itself, or the inflated payload of a compressed
/// encoding (a 4-byte cookie, a 4-byte length, then zlib data), inflated with a cap so a
/// small input cannot expand without end.
fn inflate_if_compressed(raw: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    if raw.len() < 8 || raw[..4] != V2_COMPRESSED_COOKIE.to_be_bytes() {
        return Ok(raw);
    }
    let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
    if len > raw.len() - 8 {
        anyhow::bail!(
            "compressed histogram claims {len} bytes but carries {}",
            raw.len() - 8
        );
    }
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&raw[8..8 + len])
        .take(MAX_HDR_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("bad compressed histogram: {e}"))?;
    if out.len() > MAX_HDR_BYTES {
        anyhow::bail!(
            "compressed histogram inflates past {} MiB",
            MAX_HDR_BYTES >> 20
        );
    }
    Ok(out)
}

/// Decodes [`encode`]'s output (and the uncompressed form older reports hold). The header is checked before the decoder runs: it
/// allocates what the header claims, so a forged 70-byte histogram claiming a 4 GB
/// payload, or bounds far wider than ours, must be refused first.
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    if s.len() > MAX_HDR_BYTES / 3 * 4 + 4 {
        anyhow::bail!("encoded histogram larger than {} MiB", MAX_HDR_BYTES >> 20);
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(s)?;
    let bytes = inflate_if_compressed(raw)?;
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let be64 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if bytes.len() < V2_HEADER {
        anyhow::bail!("histogram data too short ({} bytes)", bytes.len());
    }
    match be32(0) {
        V2_COOKIE => {}
        V2_COMPRESSED_COOKIE => anyhow::bail!("a compressed histogram inside a compressed one"),
        c => anyhow::bail!("not an HdrHistogram V2 encoding (cookie {c:#x})"),
    }
    let payload = be32(4) as usize;
    if payload > bytes.len() - V2_HEADER {
        anyhow::bail!(
            "histogram claims {payload} payload bytes but carries {}",
            bytes.len() - V2_HEADER
        );
    }
    let (digits, low, high) = (be32(12), be64(16), be64(24));
    // Histograms grow with their largest value, up to the bucket that holds HIGHEST_US;
    // anything wider is not one loadgen wrote (and would cost memory for nothing).
    let widest = 2 * crate::hist::HIGHEST_US;
    if low != 1 || digits != u32::from(crate::hist::SIGFIG) || !(2..widest).contains(&high) {
        anyhow::bail!(
            "histogram bounds ({low}, {high}, {digits} digits) are not loadgen's (1, at most {widest}, {})",
            crate::hist::SIGFIG
        );
    }
    let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("bad HdrHistogram data: {e:?}"))?;
    // Merging adds histograms of other ranges into it.
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::hist::new_histogram;

    #[test]
    fn hdr_round_trip() {
        let mut h = new_histogram();
        for v in [1u64, 10, 100, 1000, 123_456, 60_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn reports_from_before_compression_still_read() {
        use hdrhistogram::serialization::V2Serializer;
        let mut h = new_histogram();
        h.record(1234).unwrap();
        let mut buf = Vec::new();
        V2Serializer::new().serialize(&h, &mut buf).unwrap();
        let old = base64::engine::general_purpose::STANDARD.encode(&buf);
        assert_eq!(decode(&old).unwrap().len(), 1);
        // What is written now is the compressed form.
        let now = base64::engine::general_purpose::STANDARD
            .decode(encode(&h))
            .unwrap();
        assert_eq!(now[..4], V2_COMPRESSED_COOKIE.to_be_bytes());
    }

    #[test]
    fn a_compressed_bomb_is_refused() {
        use std::io::Write as _;
        // 64 MiB of zeros compress to a few KiB.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            z.write_all(&zeros).unwrap();
        }
        let payload = z.finish().unwrap();
        let mut raw = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        raw.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        raw.extend_from_slice(&payload);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let err = decode(&b64).unwrap_err().to_string();
        assert!(err.contains("inflates past"), "{err}");
    }
}
