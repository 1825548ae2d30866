//! Custom MAIL FROM rules: the name itself, its one MX to SES's feedback host in the right
//! region, its SPF record with `include:amazonses.com`, no CNAME in the way.

use super::*;

impl Judge<'_> {
    pub(super) fn mail_from(&mut self) -> (Option<bool>, Option<String>) {
        let d = self.snap.domain.clone();
        let mf = match mail_from_name(self.snap) {
            None => {
                self.find(
                    code::MAIL_FROM_NOT_CHECKED,
                    &d,
                    "No --mail-from: the MAIL FROM records were not checked and SPF alignment of SES mail is unknown."
                        .into(),
                    Some("ses-dmarc check DOMAIN --mail-from mail (the MAIL FROM label you set in SES)".into()),
                );
                return (None, None);
            }
            Some(Err(MailFromError::IsIdentity { .. })) => {
                self.find(
                    code::MAIL_FROM_IS_FROM_DOMAIN,
                    &d,
                    format!("the MAIL FROM domain is {d} itself; SES requires a subdomain."),
                    Some(format!("use mail.{d}")),
                );
                return (Some(false), None);
            }
            Some(Err(e)) => {
                self.find(
                    code::MAIL_FROM_NOT_SUBDOMAIN,
                    &d,
                    e.to_string(),
                    Some(format!("use a name under {d}, such as mail.{d}")),
                );
                return (Some(false), None);
            }
            Some(Ok(mf)) => mf.to_string(),
        };
        let region = self.region.clone();
        let feedback = format!("feedback-smtp.{}.amazonses.com", region.as_deref().unwrap_or("<region>"));
        let mx_fix = format!("{mf}. MX 10 {feedback}.");
        let mut cname_ok = Some(true);
        if let Some(a) = self.answer(&mf, RecordType::Cname, "The MAIL FROM CNAME check is")
            && let [Rdata::Name(target), ..] = a.records()
        {
            cname_ok = Some(false);
            self.find(
                code::MAIL_FROM_CNAME_CONFLICT,
                &mf,
                format!("{mf} is a CNAME to {target}: no MX or TXT record can sit beside it (RFC 1034)."),
                Some(format!(
                    "delete the CNAME, then publish {mx_fix} and {mf}. TXT \"v=spf1 include:amazonses.com ~all\""
                )),
            );
        } else if self.snap.get(&mf, RecordType::Cname).is_some_and(|a| a.is_failure()) {
            cname_ok = None;
        }
        if cname_ok == Some(false) {
            // The MX and TXT answers are the CNAME target's: reporting them missing would be noise.
            return (Some(false), Some(mf));
        }
        let mx_ok = match self.answer(&mf, RecordType::Mx, "The MAIL FROM MX checks are") {
            None => None,
            Some(a) => {
                let mxs: Vec<(u16, String)> = a
                    .records()
                    .iter()
                    .filter_map(|r| {
                        if let Rdata::Mx { preference, exchange } = r {
                            Some((*preference, exchange.clone()))
                        } else {
                            None
                        }
                    })
                    .collect();
                match mxs.as_slice() {
                    [] => {
                        self.find(
                            code::MAIL_FROM_MX_MISSING,
                            &mf,
                            format!("{mf} has no MX record: SES cannot verify the MAIL FROM domain, and with USE_DEFAULT_VALUE it falls back to amazonses.com."),
                            Some(mx_fix.clone()),
                        );
                        Some(false)
                    }
                    [(pref, host)] => self.mail_from_mx(&mf, *pref, host, &mx_fix),
                    many => {
                        let list: Vec<String> = many.iter().map(|(p, h)| format!("{p} {h}")).collect();
                        self.find(
                            code::MAIL_FROM_MX_MULTIPLE,
                            &mf,
                            format!(
                                "{mf} has {} MX records ({}); SES requires exactly one.",
                                many.len(),
                                list.join(", ")
                            ),
                            Some(format!("keep only {mx_fix}")),
                        );
                        Some(false)
                    }
                }
            }
        };
        let (spf_ok, tree) = self.spf_at(&mf, "The MAIL FROM SPF checks are");
        let spf_fix = format!("{mf}. TXT \"v=spf1 include:amazonses.com ~all\"");
        let spf_ok = match (spf_ok, &tree) {
            (Some(false), None)
                if !self.findings.iter().any(|f| {
                    f.name == mf && (f.code == code::TXT_QUOTED_VALUE || f.code == code::MAIL_FROM_SPF_MULTIPLE)
                }) =>
            {
                self.find(
                    code::MAIL_FROM_SPF_MISSING,
                    &mf,
                    format!("{mf} has no SPF record: SPF for SES mail returns none and cannot align."),
                    Some(spf_fix),
                );
                Some(false)
            }
            (state, Some(tree)) if !tree.includes("amazonses.com") => {
                let _ = state;
                self.find(
                    code::MAIL_FROM_SPF_NO_SES,
                    &mf,
                    format!(
                        "the SPF record of {mf} does not include amazonses.com, so SES's servers are not authorized."
                    ),
                    Some(spf_fix),
                );
                Some(false)
            }
            (state, _) => state,
        };
        (all_of(&[cname_ok, mx_ok, spf_ok]), Some(mf))
    }

    pub(super) fn mail_from_mx(&mut self, mf: &str, pref: u16, host: &str, mx_fix: &str) -> Option<bool> {
        match regions::region_of_feedback_host(host) {
            None => {
                self.find(
                    code::MAIL_FROM_MX_NOT_SES,
                    mf,
                    format!("the MX of {mf} is {host}, not SES's feedback endpoint."),
                    Some(mx_fix.to_string()),
                );
                Some(false)
            }
            Some(Err(bad)) => {
                let hint = regions::suggest(&bad).first().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
                self.find(
                    code::MAIL_FROM_MX_UNKNOWN_REGION,
                    mf,
                    format!("the MX of {mf} names feedback-smtp.{bad}.amazonses.com, but `{bad}` is not an SES region{hint}."),
                    Some(mx_fix.to_string()),
                );
                Some(false)
            }
            Some(Ok(region)) => {
                let expected = &self.snap.expectations.regions;
                if !expected.is_empty() && !expected.iter().any(|r| r == region.code) {
                    self.find(
                        code::MAIL_FROM_MX_OTHER_REGION,
                        mf,
                        format!("the MX names {} while you send from {}: fine, one MX serves every region and SES forwards bounces.", region.code, expected.join(", ")),
                        None,
                    );
                }
                self.pass(RecordGroup::MailFrom, mf, format!("MX {pref} {host}"));
                Some(true)
            }
        }
    }
}
