//! DKIM public key records (RFC 6376 §3.6.1, RFC 8463, RFC 8301): tags, and what the key
//! itself is (RSA modulus size read from the DER, Ed25519 length, revoked).

use crate::diag::{Diagnostic, Parsed, Severity, code};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use std::fmt;
use std::ops::Range;

/// A DKIM key record (RFC 6376 §3.6.1), the TXT record at `<selector>._domainkey.<domain>`:
/// its tags as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DkimKeyRecord {
    /// `v=`, when written.
    pub version: Option<String>,
    /// `k=` lower-cased, when written (default `rsa`).
    pub key_type: Option<String>,
    /// `h=` hash algorithms, when written.
    pub hash_algorithms: Option<Vec<String>>,
    /// `s=` service types, when written.
    pub service_types: Option<Vec<String>>,
    /// `t=` flags, when written.
    pub flags: Option<Vec<String>>,
    /// `n=` notes.
    pub notes: Option<String>,
    /// `p=` with white space removed; `Some("")` is a revoked key.
    pub public_key: Option<String>,
    /// Tags RFC 6376 does not define, name and value as written; verifiers ignore them.
    pub unknown_tags: Vec<(String, String)>,
}

/// What the `p=` value holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KeyInfo {
    /// An RSA key.
    Rsa {
        /// The modulus length in bits (RFC 8301: at least 1024, 2048 recommended).
        bits: u32,
    },
    /// An Ed25519 key (RFC 8463): 32 raw bytes.
    Ed25519,
    /// `p=` is empty: the key is revoked.
    Revoked,
    /// No `p=` tag: the record holds no key.
    Missing,
    /// `p=` does not decode to a key of the stated type.
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
}

const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

impl DkimKeyRecord {
    /// Parses one key record. The value is always there; every problem, including the key's own
    /// (revoked, weak, not decodable), is a diagnostic.
    pub fn parse(text: &str) -> Parsed<DkimKeyRecord> {
        let mut diags = Vec::new();
        let mut rec = DkimKeyRecord::default();
        let mut seen: Vec<String> = Vec::new();
        let mut offset = 0;
        let mut first = true;
        for seg in text.split(';') {
            let lead = seg.len() - seg.trim_start().len();
            let trimmed = seg.trim();
            let span = offset + lead..offset + lead + trimmed.len();
            offset += seg.len() + 1;
            if trimmed.is_empty() {
                continue;
            }
            let Some((name, value)) = trimmed.split_once('=') else {
                diags.push(err(code::DKIM_SYNTAX, span, format!("`{trimmed}` is not `tag=value`")));
                first = false;
                continue;
            };
            let name = name.trim();
            let value = value.trim();
            if name.is_empty()
                || !name.as_bytes()[0].is_ascii_alphabetic()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                diags.push(err(code::DKIM_SYNTAX, span, format!("`{name}` is not a tag name")));
                first = false;
                continue;
            }
            if seen.iter().any(|s| s == name) {
                diags.push(err(
                    code::DKIM_DUPLICATE_TAG,
                    span,
                    format!("`{name}` appears twice: the record is invalid (RFC 6376 §3.2)"),
                ));
                continue;
            }
            seen.push(name.to_string());
            let list = |v: &str| v.split(':').map(|s| s.trim().to_string()).collect::<Vec<_>>();
            match name {
                "v" => {
                    if !first || value != "DKIM1" {
                        diags.push(err(code::DKIM_VERSION, span, "`v=` must be `DKIM1` and come first".into()));
                    }
                    rec.version = Some(value.to_string());
                }
                "k" => rec.key_type = Some(value.to_ascii_lowercase()),
                "h" => rec.hash_algorithms = Some(list(value)),
                "s" => rec.service_types = Some(list(value)),
                "t" => rec.flags = Some(list(value)),
                "n" => rec.notes = Some(value.to_string()),
                "p" => rec.public_key = Some(value.chars().filter(|c| !c.is_whitespace()).collect()),
                _ => rec.unknown_tags.push((name.to_string(), value.to_string())),
            }
            first = false;
        }
        let whole = 0..text.len();
        match rec.key_type.as_deref() {
            None | Some("rsa") | Some("ed25519") => {}
            Some(other) => diags.push(err(
                code::DKIM_UNKNOWN_KEY_TYPE,
                whole.clone(),
                format!("`k={other}`: verifiers know only rsa and ed25519"),
            )),
        }
        match rec.key() {
            KeyInfo::Missing => {
                diags.push(err(code::DKIM_KEY_MISSING, whole.clone(), "no `p=` tag: the record holds no key".into()))
            }
            KeyInfo::Revoked => diags.push(err(
                code::DKIM_KEY_REVOKED,
                whole.clone(),
                "`p=` is empty: this key is revoked, signatures with this selector fail".into(),
            )),
            KeyInfo::Invalid { reason } => diags.push(err(code::DKIM_KEY_INVALID, whole.clone(), reason)),
            KeyInfo::Rsa { bits } if bits < 1024 => diags.push(err(
                code::DKIM_KEY_WEAK,
                whole.clone(),
                format!("a {bits}-bit RSA key: RFC 8301 verifiers reject keys under 1024 bits; publish a 2048-bit key"),
            )),
            KeyInfo::Rsa { bits } if bits < 2048 => diags.push(Diagnostic {
                code: code::DKIM_KEY_1024,
                severity: Severity::Info,
                message: format!("a {bits}-bit RSA key: accepted, but 2048 bits is recommended"),
                span: whole.clone(),
            }),
            _ => {}
        }
        if let Some(h) = &rec.hash_algorithms
            && !h.iter().any(|a| a.eq_ignore_ascii_case("sha256"))
        {
            diags.push(err(
                code::DKIM_SHA1_ONLY,
                whole.clone(),
                format!("`h={}` does not allow sha256; RFC 8301 forbids rsa-sha1", h.join(":")),
            ));
        }
        if let Some(s) = &rec.service_types
            && !s.iter().any(|t| t == "*" || t.eq_ignore_ascii_case("email"))
        {
            diags.push(err(code::DKIM_NOT_EMAIL, whole.clone(), format!("`s={}` does not allow email", s.join(":"))));
        }
        if rec.flags.as_ref().is_some_and(|f| f.iter().any(|x| x == "y")) {
            diags.push(Diagnostic {
                code: code::DKIM_TESTING,
                severity: Severity::Info,
                message: "`t=y`: DKIM is in testing mode for this key".into(),
                span: whole,
            });
        }
        Parsed { value: Some(rec), diagnostics: diags }
    }

    pub(crate) fn is_ed25519(&self) -> bool {
        self.key_type.as_deref() == Some("ed25519")
    }

    /// Decodes `p=` and says what key it is.
    pub fn key(&self) -> KeyInfo {
        let Some(p) = &self.public_key else {
            return KeyInfo::Missing;
        };
        if p.is_empty() {
            return KeyInfo::Revoked;
        }
        let der = match base64_engine().decode(p) {
            Ok(d) => d,
            Err(e) => {
                return KeyInfo::Invalid { reason: format!("`p=` is not valid base64: {e}") };
            }
        };
        if self.is_ed25519() {
            return if der.len() == 32 {
                KeyInfo::Ed25519
            } else {
                KeyInfo::Invalid { reason: format!("an Ed25519 key is 32 bytes (RFC 8463), this one is {}", der.len()) }
            };
        }
        match rsa_modulus_bits(&der) {
            Some(bits) => KeyInfo::Rsa { bits },
            None => KeyInfo::Invalid {
                reason: "`p=` is not a DER RSA public key (SubjectPublicKeyInfo or RSAPublicKey)".into(),
            },
        }
    }
}

fn err(code: &'static str, span: Range<usize>, message: String) -> Diagnostic {
    Diagnostic { code, severity: Severity::Error, message, span }
}

/// Reads one DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Bit length of the modulus in an RSA public key, given as SubjectPublicKeyInfo (what
/// everyone publishes) or as a bare PKCS#1 RSAPublicKey (what RFC 6376's text names).
fn rsa_modulus_bits(der: &[u8]) -> Option<u32> {
    let (tag, outer, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, first, after) = der_element(outer)?;
    let rsa_key = if first_tag == 0x30 {
        let (oid_tag, oid, _) = der_element(first)?;
        if oid_tag != 0x06 || oid == ED25519_OID || oid != RSA_OID {
            return None;
        }
        let (bs_tag, bits, _) = der_element(after)?;
        if bs_tag != 0x03 || bits.first() != Some(&0) {
            return None;
        }
        let (seq_tag, seq, _) = der_element(&bits[1..])?;
        if seq_tag != 0x30 {
            return None;
        }
        seq
    } else {
        outer
    };
    let (int_tag, modulus, rest) = der_element(rsa_key)?;
    let (exp_tag, _, _) = der_element(rest)?;
    if int_tag != 0x02 || exp_tag != 0x02 {
        return None;
    }
    let start = modulus.iter().position(|&b| b != 0)?;
    let m = &modulus[start..];
    Some((m.len() as u32 - 1) * 8 + (8 - m[0].leading_zeros()))
}

impl fmt::Display for DkimKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = &self.version {
            parts.push(format!("v={v}"));
        }
        if let Some(k) = &self.key_type {
            parts.push(format!("k={k}"));
        }
        if let Some(h) = &self.hash_algorithms {
            parts.push(format!("h={}", h.join(":")));
        }
        if let Some(s) = &self.service_types {
            parts.push(format!("s={}", s.join(":")));
        }
        if let Some(t) = &self.flags {
            parts.push(format!("t={}", t.join(":")));
        }
        if let Some(n) = &self.notes {
            parts.push(format!("n={n}"));
        }
        for (name, value) in &self.unknown_tags {
            parts.push(format!("{name}={value}"));
        }
        if let Some(p) = &self.public_key {
            parts.push(format!("p={p}"));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// DER SubjectPublicKeyInfo for an RSA key whose modulus has `bits` bits (the modulus
    /// is not a real product of primes; only its length matters here).
    pub(crate) fn fake_rsa_spki(bits: u32) -> Vec<u8> {
        fn len_bytes(len: usize) -> Vec<u8> {
            if len < 0x80 {
                vec![len as u8]
            } else if len < 0x100 {
                vec![0x81, len as u8]
            } else {
                vec![0x82, (len >> 8) as u8, len as u8]
            }
        }
        fn el(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            v.extend(len_bytes(content.len()));
            v.extend_from_slice(content);
            v
        }
        let nbytes = bits.div_ceil(8) as usize;
        let mut modulus = vec![0u8];
        modulus.push(1u8 << ((bits - 1) % 8));
        modulus.extend(std::iter::repeat_n(0xab, nbytes - 1));
        let rsa = el(0x30, &[el(0x02, &modulus), el(0x02, &[1, 0, 1])].concat());
        let alg = el(0x30, &[el(0x06, RSA_OID), vec![0x05, 0x00]].concat());
        let mut bitstring = vec![0u8];
        bitstring.extend(rsa);
        el(0x30, &[alg, el(0x03, &bitstring)].concat())
    }

    pub(crate) fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn codes(text: &str) -> Vec<&'static str> {
        DkimKeyRecord::parse(text).diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn rsa_sizes() {
        for bits in [512u32, 1024, 2048, 4096] {
            let text = format!("v=DKIM1; k=rsa; p={}", b64(&fake_rsa_spki(bits)));
            let p = DkimKeyRecord::parse(&text);
            assert_eq!(p.value.as_ref().unwrap().key(), KeyInfo::Rsa { bits });
            assert_eq!(p.value.unwrap().to_string(), text);
        }
        assert_eq!(codes(&format!("v=DKIM1; p={}", b64(&fake_rsa_spki(512)))), vec![code::DKIM_KEY_WEAK]);
        assert_eq!(codes(&format!("v=DKIM1; p={}", b64(&fake_rsa_spki(1024)))), vec![code::DKIM_KEY_1024]);
        assert!(codes(&format!("v=DKIM1; p={}", b64(&fake_rsa_spki(2048)))).is_empty());
    }

    #[test]
    fn key_split_with_spaces() {
        let key = b64(&fake_rsa_spki(2048));
        let (a, b) = key.split_at(100);
        let p = DkimKeyRecord::parse(&format!("v=DKIM1; k=rsa;\r\n p={a} {b}"));
        assert_eq!(p.value.unwrap().key(), KeyInfo::Rsa { bits: 2048 });
    }

    #[test]
    fn ed25519() {
        let key = b64(&[7u8; 32]);
        assert!(codes(&format!("v=DKIM1; k=ed25519; p={key}")).is_empty());
        assert_eq!(codes(&format!("v=DKIM1; k=ed25519; p={}", b64(&[7u8; 31]))), vec![code::DKIM_KEY_INVALID]);
    }

    #[test]
    fn problems() {
        assert_eq!(codes("v=DKIM1; p="), vec![code::DKIM_KEY_REVOKED]);
        assert_eq!(codes("v=DKIM1; k=rsa"), vec![code::DKIM_KEY_MISSING]);
        assert_eq!(codes("v=DKIM1; p=!!!"), vec![code::DKIM_KEY_INVALID]);
        assert_eq!(codes("v=DKIM1; p=AAAA"), vec![code::DKIM_KEY_INVALID]);
        let good = b64(&fake_rsa_spki(2048));
        assert_eq!(codes(&format!("k=rsa; v=DKIM1; p={good}")), vec![code::DKIM_VERSION]);
        assert_eq!(codes(&format!("v=DKIM2; p={good}")), vec![code::DKIM_VERSION]);
        assert_eq!(codes(&format!("v=DKIM1; h=sha1; p={good}")), vec![code::DKIM_SHA1_ONLY]);
        assert!(codes(&format!("v=DKIM1; h=sha1:sha256; p={good}")).is_empty());
        assert_eq!(codes(&format!("v=DKIM1; s=tlsrpt; p={good}")), vec![code::DKIM_NOT_EMAIL]);
        assert_eq!(codes(&format!("v=DKIM1; t=y; p={good}")), vec![code::DKIM_TESTING]);
        assert_eq!(codes(&format!("v=DKIM1; k=dsa; p={good}")), vec![code::DKIM_UNKNOWN_KEY_TYPE]);
        assert_eq!(codes(&format!("v=DKIM1; p={good}; p={good}")), vec![code::DKIM_DUPLICATE_TAG]);
        assert_eq!(codes(&format!("v=DKIM1; junk; p={good}")), vec![code::DKIM_SYNTAX]);
    }

    #[test]
    fn bare_pkcs1_key() {
        let spki = fake_rsa_spki(2048);
        // Dig the RSAPublicKey out of the SubjectPublicKeyInfo's BIT STRING.
        let (_, outer, _) = der_element(&spki).unwrap();
        let (_, _, after) = der_element(outer).unwrap();
        let (_, bits, _) = der_element(after).unwrap();
        assert_eq!(rsa_modulus_bits(&bits[1..]), Some(2048));
    }
}
