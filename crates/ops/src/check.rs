//! Checking domains: what the user expects of each (from flags, a `--file` line, or the
//! SES identity), then gather → snapshot → rules, one domain or a million.

use crate::OpsError;
use futures::{Stream, StreamExt};
use ses_dmarc_audit::{DomainReport, Expectations, check_domain};
use ses_dmarc_dns::Resolver;

/// One domain to check, with what to expect of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckJob {
    /// The domain, validated and normalised.
    pub domain: String,
    /// What its records should say.
    pub expectations: Expectations,
}

/// A domain as typed on the command line or in a file.
pub fn domain(text: &str) -> Result<String, OpsError> {
    Ok(ses_dmarc_ses::plan::parse_domain(text)?.to_string())
}

/// An SES region code as typed.
pub fn region(text: &str) -> Result<String, OpsError> {
    Ok(ses_dmarc_ses::plan::parse_region(text)?.code.to_string())
}

/// `--region` values, each possibly a comma-separated list.
pub fn regions(values: &[String]) -> Result<Vec<String>, OpsError> {
    values.iter().flat_map(|r| r.split(',')).map(region).collect()
}

/// Refuses Easy DKIM tokens that cannot be right: SES gives three per region, so one or
/// two for a region would judge a DKIM setup that SES never made.
pub fn validate_tokens(e: &Expectations) -> Result<(), OpsError> {
    let mut per_region: std::collections::BTreeMap<Option<String>, usize> = Default::default();
    for (region, _) in e.tokens() {
        *per_region.entry(region).or_default() += 1;
    }
    for (region, count) in per_region {
        if count != 3 {
            return Err(OpsError::Plan(ses_dmarc_ses::PlanError::DkimTokenCount {
                region: region.unwrap_or_else(|| "the first --region".into()),
                count,
            }));
        }
    }
    Ok(())
}

/// The keys a `--file` line may carry after its domain.
const LINE_KEYS: &str = "mail-from=, dkim-token=, selector=, region=";

/// Parses one line of a domain list: `domain [key=value]...`, where the keys override
/// `base` for that line; `#` starts a comment. `None` for a blank or comment line.
pub fn parse_line(line: &str, base: &Expectations) -> Result<Option<CheckJob>, OpsError> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let domain = domain(parts.next().unwrap_or_default())?;
    let mut e = base.clone();
    let (mut tokens, mut selectors, mut regions) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            return Err(OpsError::Input(format!("`{p}` is not key=value ({LINE_KEYS})")));
        };
        match k {
            "mail-from" => e.mail_from = Some(v.to_string()),
            "dkim-token" => tokens.push(v.to_string()),
            "selector" => selectors.push(v.to_string()),
            "region" => regions.push(region(v)?),
            _ => return Err(OpsError::Input(format!("unknown key `{k}` ({LINE_KEYS})"))),
        }
    }
    if !tokens.is_empty() {
        e.dkim_tokens = tokens;
    }
    if !selectors.is_empty() {
        e.selectors = selectors;
    }
    if !regions.is_empty() {
        e.regions = regions;
    }
    validate_tokens(&e)?;
    Ok(Some(CheckJob { domain, expectations: e }))
}

/// `--from-ses` for `check`: the MAIL FROM name (unless one is given) and the DKIM tokens
/// (`REGION:TOKEN`) from the SES identity in each of `base.regions`.
pub async fn expectations_from_ses(
    domain: &str,
    base: &Expectations,
    endpoint_url: Option<&str>,
) -> Result<Expectations, OpsError> {
    if base.regions.is_empty() || !base.dkim_tokens.is_empty() {
        return Err(OpsError::Input("--from-ses needs --region, and no --dkim-token".into()));
    }
    let mut e = base.clone();
    let mut mail_from = None;
    for (region, answer) in crate::ses_status::identity_statuses(domain, &base.regions, endpoint_url).await {
        let status = answer?;
        if !status.exists {
            return Err(crate::ses_status::not_an_identity(domain, &region));
        }
        if mail_from.is_none() {
            mail_from = status.mail_from.as_ref().map(|m| m.domain.clone());
        }
        for t in &status.dkim.tokens {
            if !e.dkim_tokens.iter().any(|x| x.ends_with(&format!(":{t}"))) {
                e.dkim_tokens.push(format!("{region}:{t}"));
            }
        }
    }
    e.mail_from = e.mail_from.or(mail_from);
    Ok(e)
}

/// Checks every job, `in_flight` domains at a time; reports come out as they finish.
pub fn check_all<'r, R: Resolver>(
    resolver: &'r R,
    jobs: impl Iterator<Item = CheckJob> + 'r,
    in_flight: usize,
) -> impl Stream<Item = DomainReport> + 'r {
    futures::stream::iter(jobs)
        .map(move |job| async move { check_domain(resolver, &job.domain, job.expectations).await })
        .buffer_unordered(in_flight.clamp(1, 4096))
}

/// The longest line of a `--file` (a domain and its overrides fit in far less).
pub const MAX_LINE: usize = 64 * 1024;

/// The lines of a domain list, each at most [`MAX_LINE`] bytes: a longer line is an error
/// (read past, never held whole), so one huge line cannot take the memory.
pub fn bounded_lines<R: std::io::BufRead>(mut reader: R) -> impl Iterator<Item = std::io::Result<String>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            };
            if buf.is_empty() {
                done = true;
                if line.is_empty() && !too_long {
                    return None;
                }
                break;
            }
            let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            if !too_long {
                if line.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            let used = found.unwrap_or(buf.len());
            reader.consume(used);
            if found.is_some() {
                break;
            }
        }
        if too_long {
            return Some(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("longer than {MAX_LINE} bytes: not a domain line"),
            )));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(
            String::from_utf8(line).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines_refuse_a_huge_line_and_go_on() {
        let text = format!("a.test\r\n{}\nb.test mail-from=m\nlast.test", "x".repeat(MAX_LINE + 10));
        let lines: Vec<Result<String, String>> = bounded_lines(std::io::BufReader::with_capacity(100, text.as_bytes()))
            .map(|l| l.map_err(|e| e.to_string()))
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0].as_deref(), Ok("a.test"));
        assert!(lines[1].as_ref().unwrap_err().contains("longer than 65536 bytes"));
        assert_eq!(lines[2].as_deref(), Ok("b.test mail-from=m"));
        assert_eq!(lines[3].as_deref(), Ok("last.test"));
        assert_eq!(bounded_lines(&b""[..]).count(), 0);
        assert_eq!(bounded_lines(&b"\n"[..]).map(|l| l.unwrap()).collect::<Vec<_>>(), [""]);
        assert!(bounded_lines(&b"\xff\n"[..]).next().unwrap().is_err());
    }

    #[test]
    fn lines() {
        let base = Expectations { regions: vec!["us-east-1".into()], ..Default::default() };
        assert_eq!(parse_line("  # comment", &base).unwrap(), None);
        let job =
            parse_line("Example.COM mail-from=m dkim-token=a dkim-token=b dkim-token=c region=eu-west-1 # note", &base)
                .unwrap()
                .unwrap();
        assert_eq!(job.domain, "example.com");
        assert_eq!(job.expectations.mail_from.as_deref(), Some("m"));
        assert_eq!(job.expectations.regions, ["eu-west-1"]);
        assert!(parse_line("example.com colour=blue", &base).unwrap_err().to_string().contains("unknown key"));
        assert!(parse_line("example.com region=us-east1", &base).unwrap_err().to_string().contains("us-east-1"));
        assert!(parse_line("localhost", &base).is_err());
        let two = parse_line("example.com dkim-token=a dkim-token=b", &base).unwrap_err().to_string();
        assert!(two.contains("three Easy DKIM tokens per identity, 2 given"), "{two}");
        let three = "example.com dkim-token=a dkim-token=b dkim-token=c dkim-token=eu-west-1:d";
        assert!(parse_line(three, &base).unwrap_err().to_string().contains("eu-west-1"));
    }
}
