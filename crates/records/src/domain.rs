//! Domain names: IDNA to ASCII, case, trailing dots, label and length limits, and the
//! organizational domain by the public suffix list.

use serde::{Serialize, Serializer};
use std::fmt;

/// A domain name in canonical form: ASCII (A-labels), lower case, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

/// Why a text is not a valid domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    /// Nothing left once white space and one trailing dot are removed.
    #[error("the domain name is empty")]
    Empty,
    /// Two dots in a row or a leading dot; holds the name.
    #[error("`{0}` has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel(String),
    /// A label over 63 bytes.
    #[error("the label `{label}` is {len} bytes long; a label may have at most 63")]
    LabelTooLong {
        /// The label.
        label: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A name over 253 bytes (in A-labels).
    #[error("`{name}` is {len} bytes long; a domain name may have at most 253")]
    NameTooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character other than a letter, digit, hyphen or (in DNS names) underscore.
    #[error("`{name}` contains `{ch}`, which is not allowed in a domain name")]
    BadCharacter {
        /// The name.
        name: String,
        /// The character refused.
        ch: char,
    },
    /// A label starting or ending with a hyphen; holds the label.
    #[error("the label `{0}` starts or ends with a hyphen")]
    HyphenEdge(String),
    /// A Unicode name IDNA cannot convert to A-labels.
    #[error("`{name}` is not a valid internationalized domain name: {reason}")]
    Idna {
        /// The name as given.
        name: String,
        /// The IDNA error.
        reason: String,
    },
    /// An underscore label in a host name; holds the name.
    #[error("`{0}` contains an underscore label; a host name may not")]
    Underscore(String),
}

/// Which characters a label may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelRules {
    /// Letters, digits, hyphens: names people register and mail is sent from.
    Hostname,
    /// Also underscores: `_dmarc`, `_domainkey` and other service labels.
    Dns,
}

impl DomainName {
    /// A host name as a person types it: Unicode is converted to A-labels, case folded, one
    /// trailing dot dropped. Underscores are refused.
    pub fn parse_hostname(input: &str) -> Result<Self, DomainNameError> {
        Self::parse_with(input, LabelRules::Hostname)
    }

    /// Any DNS owner name used by mail authentication (service labels with underscores
    /// allowed).
    pub fn parse(input: &str) -> Result<Self, DomainNameError> {
        Self::parse_with(input, LabelRules::Dns)
    }

    fn parse_with(input: &str, rules: LabelRules) -> Result<Self, DomainNameError> {
        let trimmed = input.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainNameError::Empty);
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(trimmed)
                .map_err(|e| DomainNameError::Idna { name: trimmed.to_string(), reason: e.to_string() })?
        };
        if ascii.len() > 253 {
            return Err(DomainNameError::NameTooLong { len: ascii.len(), name: ascii });
        }
        for label in ascii.split('.') {
            if label.is_empty() {
                return Err(DomainNameError::EmptyLabel(ascii.clone()));
            }
            if label.len() > 63 {
                return Err(DomainNameError::LabelTooLong { label: label.to_string(), len: label.len() });
            }
            if let Some(ch) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
                return Err(DomainNameError::BadCharacter { name: ascii.clone(), ch });
            }
            if label.contains('_') {
                if rules == LabelRules::Hostname {
                    return Err(DomainNameError::Underscore(ascii.clone()));
                }
            } else if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainNameError::HyphenEdge(label.to_string()));
            }
        }
        Ok(DomainName(ascii))
    }

    /// The name in canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with a trailing dot, as zone files and Route 53 write absolute names.
    pub fn to_fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    pub(crate) fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.')
    }

    /// How many labels the name has (`example.com` has 2).
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }

    /// `label.self`, checked.
    pub fn prepend(&self, label: &str) -> Result<Self, DomainNameError> {
        Self::parse(&format!("{label}.{}", self.0))
    }

    /// The parent name, `None` for a single label.
    pub fn parent(&self) -> Option<Self> {
        self.0.split_once('.').map(|(_, rest)| DomainName(rest.to_string()))
    }

    /// True when `self` equals `other` or lies below it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(&other.0)
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }

    /// True when `self` lies strictly below `other`.
    pub fn is_strict_subdomain_of(&self, other: &DomainName) -> bool {
        self != other && self.is_within(other)
    }

    /// The public suffix of this name by the public suffix list, and whether the list knows
    /// it (an unknown top-level domain gets the last label, `known == false`).
    pub fn public_suffix(&self) -> PublicSuffix {
        match psl::suffix(self.0.as_bytes()) {
            Some(s) => PublicSuffix { suffix: String::from_utf8_lossy(s.as_bytes()).into_owned(), known: s.is_known() },
            None => PublicSuffix { suffix: self.labels().last().unwrap_or_default().to_string(), known: false },
        }
    }

    /// True when the name itself is a public suffix (`com`, `co.uk`).
    pub fn is_public_suffix(&self) -> bool {
        let ps = self.public_suffix();
        ps.known && ps.suffix == self.0
    }

    /// The organizational domain as RFC 7489 defines it: the public suffix plus one label.
    /// A name that is itself a public suffix is its own organizational domain.
    pub fn organizational_domain(&self) -> DomainName {
        match psl::domain(self.0.as_bytes()) {
            Some(d) => DomainName(String::from_utf8_lossy(d.as_bytes()).into_owned()),
            None => self.clone(),
        }
    }
}

/// A name's public suffix (`com`, `co.uk`), by the public suffix list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSuffix {
    /// The suffix, lower case, no trailing dot.
    pub suffix: String,
    /// Whether the list knows the suffix (false: an unknown top-level domain, taken as its
    /// last label).
    pub known: bool,
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = DomainNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form() {
        let d = DomainName::parse_hostname(" Example.COM. ").unwrap();
        assert_eq!(d.as_str(), "example.com");
        assert_eq!(d.to_fqdn(), "example.com.");
    }

    #[test]
    fn idna_to_ascii() {
        let d = DomainName::parse_hostname("bücher.example").unwrap();
        assert_eq!(d.as_str(), "xn--bcher-kva.example");
    }

    #[test]
    fn limits() {
        assert!(matches!(DomainName::parse(""), Err(DomainNameError::Empty)));
        assert!(matches!(DomainName::parse("a..b"), Err(DomainNameError::EmptyLabel(_))));
        let long = "a".repeat(64);
        assert!(matches!(DomainName::parse(&format!("{long}.com")), Err(DomainNameError::LabelTooLong { .. })));
        let name = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(DomainName::parse(&name), Err(DomainNameError::NameTooLong { .. })));
        assert!(matches!(DomainName::parse("exa mple.com"), Err(DomainNameError::BadCharacter { .. })));
        assert!(matches!(DomainName::parse("-a.com"), Err(DomainNameError::HyphenEdge(_))));
        assert!(matches!(DomainName::parse_hostname("_dmarc.a.com"), Err(DomainNameError::Underscore(_))));
        assert!(DomainName::parse("_dmarc.a.com").is_ok());
    }

    #[test]
    fn organizational_domain() {
        let d = DomainName::parse("mail.shop.example.co.uk").unwrap();
        assert_eq!(d.organizational_domain().as_str(), "example.co.uk");
        assert!(DomainName::parse("co.uk").unwrap().is_public_suffix());
        assert!(!DomainName::parse("example.invalidtld").unwrap().public_suffix().known);
        let a = DomainName::parse("mail.example.com").unwrap();
        let b = DomainName::parse("example.com").unwrap();
        assert!(a.is_strict_subdomain_of(&b));
        assert!(!b.is_strict_subdomain_of(&b));
        assert!(!DomainName::parse("badexample.com").unwrap().is_within(&b));
    }
}
