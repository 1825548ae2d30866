//! The custom MAIL FROM name rules (SES developer guide, `mail-from.md`).

use ses_dmarc_records::DomainName;

/// Why a name cannot be the identity's custom MAIL FROM domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailFromError {
    /// Not a valid host name.
    #[error("`{input}` is not a valid MAIL FROM name: {reason}")]
    Invalid {
        /// The name as typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "the MAIL FROM domain must not be {domain} itself (SES requires a subdomain): use a label such as `--mail-from mail` for mail.{domain}"
    )]
    /// The identity's domain itself: SES requires a subdomain.
    IsIdentity {
        /// The identity's domain.
        domain: String,
    },
    #[error(
        "`{input}` is not under {domain}: SES requires a subdomain of the identity; use a label such as `--mail-from mail` or a name ending in .{domain}"
    )]
    /// A name outside the identity's domain.
    NotSubdomain {
        /// The name as typed.
        input: String,
        /// The identity's domain.
        domain: String,
    },
}

/// Turns `--mail-from` (a single label such as `mail`, or a full name under the domain)
/// into the MAIL FROM domain.
pub fn resolve(domain: &DomainName, input: &str) -> Result<DomainName, MailFromError> {
    let trimmed = input.trim().trim_end_matches('.');
    let invalid = |reason: String| MailFromError::Invalid { input: input.to_string(), reason };
    if trimmed.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    let candidate = if trimmed.contains('.') {
        DomainName::parse_hostname(trimmed).map_err(|e| invalid(e.to_string()))?
    } else {
        let label = DomainName::parse_hostname(trimmed).map_err(|e| invalid(e.to_string()))?;
        domain.prepend(label.as_str()).map_err(|e| invalid(e.to_string()))?
    };
    if &candidate == domain {
        return Err(MailFromError::IsIdentity { domain: domain.to_string() });
    }
    if !candidate.is_strict_subdomain_of(domain) {
        return Err(MailFromError::NotSubdomain { input: input.to_string(), domain: domain.to_string() });
    }
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_or_name() {
        let d = DomainName::parse("example.com").unwrap();
        assert_eq!(resolve(&d, "mail").unwrap().as_str(), "mail.example.com");
        assert_eq!(resolve(&d, "Bounce.Example.com.").unwrap().as_str(), "bounce.example.com");
        assert_eq!(resolve(&d, "a.b.example.com").unwrap().as_str(), "a.b.example.com");
        assert!(matches!(resolve(&d, "example.com"), Err(MailFromError::IsIdentity { .. })));
        assert!(matches!(resolve(&d, "mail.other.com"), Err(MailFromError::NotSubdomain { .. })));
        assert!(matches!(resolve(&d, "mail.badexample.com"), Err(MailFromError::NotSubdomain { .. })));
        assert!(matches!(resolve(&d, "ma il"), Err(MailFromError::Invalid { .. })));
        assert!(matches!(resolve(&d, "_mail"), Err(MailFromError::Invalid { .. })));
        assert!(matches!(resolve(&d, ""), Err(MailFromError::Invalid { .. })));
    }
}
