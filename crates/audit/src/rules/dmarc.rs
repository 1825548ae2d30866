//! DMARC rules: the record that applies (RFC 9989 tree walk, RFC 7489 where they differ),
//! its syntax and policy, report destinations and their authorization, alignment modes.

use super::*;

impl Judge<'_> {
    pub(super) fn dmarc(&mut self, mail_from_given: bool) -> (Option<bool>, Option<Policy>, bool) {
        let d = self.snap.domain.clone();
        let dmarc_name = format!("_dmarc.{d}");
        let fix = format!("{dmarc_name}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{d}\"");
        let disc: Discovered = match discover_9989(self.snap, &d) {
            Ok(x) => x,
            Err(DiscoveryBlocked::Failed { name, failure }) => {
                self.unknown(&name, RecordType::Txt, &failure, "The DMARC checks are");
                return (None, None, false);
            }
            Err(DiscoveryBlocked::Pending) => {
                self.unknown(
                    &dmarc_name,
                    RecordType::Txt,
                    &Failure::Network("not queried".into()),
                    "The DMARC checks are",
                );
                return (None, None, false);
            }
        };
        for n in tree_walk_names(&d) {
            if let DmarcAt::Failed { failure } = dmarc_at(self.snap, &n) {
                self.unknown(
                    &format!("_dmarc.{n}"),
                    RecordType::Txt,
                    &failure,
                    "The organizational domain (RFC 9989 tree walk) is",
                );
            }
        }
        match dmarc_at(self.snap, &d) {
            DmarcAt::Multiple { texts } => {
                self.find(
                    code::DMARC_MULTIPLE,
                    &dmarc_name,
                    format!("{} DMARC records ({}): receivers apply none of them.", texts.len(), texts.join(" | ")),
                    Some(format!("{dmarc_name}. TXT \"{}\" (one record: delete the others)", merged_dmarc(&texts, &d))),
                );
                return (Some(false), None, false);
            }
            DmarcAt::Quoted { texts } => {
                self.find(
                    code::TXT_QUOTED_VALUE,
                    &dmarc_name,
                    format!(
                        "the DMARC value is stored with literal quotes ({}): receivers do not see a record.",
                        texts[0]
                    ),
                    Some(format!("{dmarc_name}. TXT {}", texts[0].trim())),
                );
                return (Some(false), None, false);
            }
            _ => {}
        }
        let (Some(policy_domain), Some(text)) = (disc.policy_domain.clone(), disc.record.clone()) else {
            self.find(
                code::DMARC_MISSING,
                &dmarc_name,
                format!("no DMARC record at {dmarc_name} nor at its organizational domain."),
                Some(fix),
            );
            return (Some(false), None, false);
        };
        let record_name = format!("_dmarc.{policy_domain}");
        if !disc.own {
            self.find(
                code::DMARC_INHERITED,
                &dmarc_name,
                format!("no record at {dmarc_name}; receivers apply the record of {policy_domain} (`{text}`)."),
                None,
            );
        }
        if let Ok(old) = discover_7489(self.snap, &d)
            && old.policy_domain != disc.policy_domain
        {
            self.find(
                code::DMARC_DISCOVERY_DIFFERS,
                &dmarc_name,
                format!(
                    "RFC 9989 receivers apply the record of {} but RFC 7489 receivers that of {}.",
                    disc.policy_domain.as_deref().unwrap_or("no domain"),
                    old.policy_domain.as_deref().unwrap_or("no domain")
                ),
                None,
            );
        }
        let parsed = DmarcRecord::parse(&text);
        let broken =
            parsed.diagnostics.iter().any(|x| x.severity == Severity::Error && x.code != diag::DMARC_URI_INVALID);
        // The record with what is broken put right: unknown values dropped, p=none when
        // the policy itself is what is broken.
        let fixed = parsed.value.clone().map(|mut r| {
            if r.policy.is_none() {
                r.policy = Some(Policy::None);
            }
            r.to_string()
        });
        let syntax_fix = Some(format!(
            "{record_name}. TXT \"{}\"",
            fixed.clone().unwrap_or_else(|| format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{d}"))
        ));
        for diag_ in &parsed.diagnostics {
            let c = match (diag_.code, diag_.severity) {
                (c, _) if c == diag::DMARC_URI_INVALID => code::DMARC_RUA_INVALID,
                (_, Severity::Error) => code::DMARC_SYNTAX,
                (c, _) if c == diag::DMARC_OBSOLETE_TAG => code::DMARC_OBSOLETE_TAG,
                (_, Severity::Warning) => code::DMARC_LINT,
                _ => code::RECORD_NOTE,
            };
            let message =
                if c == diag_.code { diag_.message.clone() } else { format!("{} ({})", diag_.message, diag_.code) };
            if c == code::DMARC_SYNTAX {
                let effect = if parsed.value.is_some() {
                    "the record is unusable as written: receivers ignore what they cannot read, and an invalid policy counts as p=none"
                } else {
                    "the record is unusable: receivers apply no DMARC policy"
                };
                self.find(c, &record_name, format!("{message}; {effect}."), syntax_fix.clone());
            } else if c == code::DMARC_LINT {
                let fix = match &fixed {
                    Some(f) if *f != text => format!("{record_name}. TXT \"{f}\""),
                    _ => format!("see `{}` in docs/findings.md", diag_.code),
                };
                self.find(c, &record_name, message, Some(fix));
            } else if c == code::DMARC_RUA_INVALID {
                let with_rua = parsed.value.clone().map(|mut r| {
                    r.policy = r.policy.or(Some(Policy::None));
                    if r.rua.is_empty()
                        && let Ok(uri) =
                            ses_dmarc_records::dmarc::ReportUri::parse(&format!("mailto:dmarc-reports@{d}"))
                    {
                        r.rua.push(uri);
                    }
                    r.to_string()
                });
                self.find(c, &record_name, message, with_rua.map(|r| format!("{record_name}. TXT \"{r}\"")));
            } else {
                self.find(c, &record_name, message, None);
            }
        }
        let rua_invalid = parsed.has_code(diag::DMARC_URI_INVALID);
        let Some(rec) = parsed.value else { return (Some(false), None, false) };
        let meaning = rec.meaning(Rfc::Rfc9989);
        let policy = if disc.own { meaning.policy } else { meaning.subdomain_policy };
        if policy == Policy::None {
            let message = if rec.policy.is_none() || broken {
                "in effect p=none (the policy as published is not valid): receivers report but deliver failing mail, spoofed mail included."
            } else {
                "p=none: receivers report but deliver failing mail, spoofed mail included."
            };
            self.find(code::DMARC_POLICY_NONE, &record_name, message.into(), Some("when the reports show all legitimate mail aligned: p=quarantine, then p=reject (ses-dmarc rollout)".into()));
        }
        if rec.rua.is_empty() && !rua_invalid {
            self.find(
                code::DMARC_NO_RUA,
                &record_name,
                "no rua: nobody sends you aggregate reports.".into(),
                Some(format!("add rua=mailto:dmarc-reports@{d}")),
            );
        }
        let strict_spf = meaning.aspf == ses_dmarc_records::AlignmentMode::Strict;
        if strict_spf && mail_from_given {
            self.find(
                code::DMARC_ASPF_STRICT_SES,
                &record_name,
                "aspf=s: the custom MAIL FROM is a subdomain, so SPF never aligns strictly for SES mail.".into(),
                Some("remove aspf=s".into()),
            );
        }
        let weaker = |p: Option<Policy>| p.is_some_and(|p| p < meaning.policy);
        if disc.own && (weaker(rec.subdomain_policy) || weaker(rec.nonexistent_policy)) {
            self.find(
                code::DMARC_SUBDOMAIN_POLICY_WEAKER,
                &record_name,
                format!(
                    "p={} but {}: subdomains get a weaker policy and can be spoofed.",
                    meaning.policy,
                    [
                        rec.subdomain_policy.map(|p| format!("sp={p}")),
                        rec.nonexistent_policy.map(|p| format!("np={p}"))
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
                ),
                Some(format!("remove sp/np or set them to {}", meaning.policy)),
            );
        }
        for (pd, dest, qname) in external_destinations(self.snap) {
            let Some(a) = self.answer(&qname, RecordType::Txt, "The report-destination authorization check is") else {
                continue;
            };
            let authorized =
                a.records().iter().filter_map(|r| r.txt_text()).any(|t| t.trim_start().starts_with("v=DMARC1"));
            if authorized {
                self.pass(RecordGroup::Dmarc, &qname, format!("{dest} accepts reports for {pd}"));
            } else {
                self.find(
                    code::DMARC_RUA_UNAUTHORIZED,
                    &record_name,
                    format!("reports go to {dest}, which has not authorized them: {qname} has no v=DMARC1 record, so receivers send nothing."),
                    Some(format!("the owner of {dest} publishes {qname}. TXT \"v=DMARC1\"")),
                );
            }
        }
        if meaning.usable && !broken {
            self.pass(RecordGroup::Dmarc, &record_name, format!("DMARC `{text}`"));
        }
        (Some(meaning.usable), Some(policy), strict_spf)
    }
}

/// One DMARC record from several: the strongest policy among them, and every report
/// destination of any of them.
fn merged_dmarc(texts: &[String], domain: &str) -> String {
    let parsed: Vec<DmarcRecord> = texts.iter().filter_map(|t| DmarcRecord::parse(t).value).collect();
    let mut merged = parsed.first().cloned().unwrap_or_default();
    merged.policy = parsed.iter().filter_map(|r| r.policy).max().or(Some(Policy::None));
    for r in &parsed {
        for uri in r.rua.iter() {
            if !merged.rua.contains(uri) {
                merged.rua.push(uri.clone());
            }
        }
        for uri in r.ruf.iter() {
            if !merged.ruf.contains(uri) {
                merged.ruf.push(uri.clone());
            }
        }
    }
    if parsed.is_empty() {
        return format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}");
    }
    merged.to_string()
}
