//! DKIM rules: each Easy DKIM CNAME to the region's signing zone, and the key behind it
//! (or behind a BYODKIM selector): present, valid, not revoked, long enough.

use super::*;

impl Judge<'_> {
    pub(super) fn expected_zones(&self, region: &Option<String>) -> Vec<&'static str> {
        match region.as_deref().and_then(regions::find) {
            Some(r) => vec![r.dkim_signing_zone],
            None => {
                let mut z: Vec<&'static str> = regions::REGIONS.iter().map(|r| r.dkim_signing_zone).collect();
                z.sort();
                z.dedup();
                z
            }
        }
    }

    pub(super) fn dkim_key(&mut self, name: &str, via: &str) -> Option<bool> {
        let a = self.answer(name, RecordType::Txt, "The DKIM key check is")?;
        // Easy DKIM keys are SES's own, behind the CNAME; other keys are the domain's.
        let ses_key = via.trim_end_matches('.').ends_with(".amazonses.com");
        let new_key = || {
            Some(if ses_key {
                format!(
                    "SES publishes the key at {via}: check the CNAME names the token SES gave, or let SES make new keys (`aws sesv2 put-email-identity-dkim-signing-attributes --signing-attributes-origin AWS_SES`) and publish the new CNAMEs"
                )
            } else {
                format!(
                    "{name}. TXT \"v=DKIM1; k=rsa; p=<the base64 of a new 2048-bit public key>\" (and sign with its private key)"
                )
            })
        };
        let texts: Vec<String> = a.records().iter().filter_map(|r| r.txt_text()).collect();
        let Some(text) = texts.iter().find(|t| t.contains("p=")).or(texts.first()) else {
            self.find(
                code::DKIM_KEY_INVALID,
                name,
                format!("{via} has no key record: signatures with this selector fail."),
                new_key(),
            );
            return Some(false);
        };
        let parsed = DkimKeyRecord::parse(text);
        let Some(rec) = parsed.value else { return Some(false) };
        let errors: Vec<String> =
            parsed.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(|d| d.message.clone()).collect();
        match rec.key() {
            KeyInfo::Revoked => {
                self.find(code::DKIM_KEY_REVOKED, name, format!("the key at {via} is revoked (empty p=)."), new_key());
                Some(false)
            }
            KeyInfo::Rsa { bits } if bits < 1024 => {
                self.find(
                    code::DKIM_KEY_WEAK,
                    name,
                    format!("the key at {via} is RSA {bits} bits; verifiers reject keys under 1024."),
                    new_key(),
                );
                Some(false)
            }
            _ if !errors.is_empty() => {
                self.find(
                    code::DKIM_KEY_INVALID,
                    name,
                    format!("the key record at {via} is unusable: {}.", errors.join("; ")),
                    new_key(),
                );
                Some(false)
            }
            KeyInfo::Rsa { bits } => {
                if bits < 2048 {
                    self.find(
                        code::DKIM_KEY_1024,
                        name,
                        format!("the key at {via} is RSA {bits} bits; 2048 is recommended."),
                        None,
                    );
                }
                self.pass(RecordGroup::Dkim, name, format!("key RSA {bits} bits"));
                Some(true)
            }
            KeyInfo::Ed25519 => {
                self.pass(RecordGroup::Dkim, name, "key Ed25519".into());
                Some(true)
            }
            KeyInfo::Missing | KeyInfo::Invalid { .. } => {
                self.find(
                    code::DKIM_KEY_INVALID,
                    name,
                    format!("the key record at {via} holds no usable key."),
                    new_key(),
                );
                Some(false)
            }
        }
    }

    pub(super) fn dkim(&mut self) -> Option<bool> {
        let d = self.snap.domain.clone();
        let assumed = self.region.clone();
        let tokens: Vec<(Option<String>, String)> =
            self.snap.expectations.tokens().into_iter().map(|(r, t)| (r.or_else(|| assumed.clone()), t)).collect();
        let selectors = self.snap.expectations.selectors.clone();
        if tokens.is_empty() && selectors.is_empty() {
            self.find(
                code::DKIM_NOT_CHECKED,
                &d,
                "No --dkim-token or --selector: the DKIM records were not checked and DKIM alignment is unknown."
                    .into(),
                Some(
                    "pass the three Easy DKIM tokens with --dkim-token (aws sesv2 get-email-identity shows them)"
                        .into(),
                ),
            );
            return None;
        }
        let mut token_states = Vec::new();
        for (region, token) in &tokens {
            let name = dkim_name(token, &d);
            let zones = self.expected_zones(region);
            let expected = format!("{token}.{}", zones[0]);
            let fix = format!("{name}. CNAME {expected}.");
            let Some(a) = self.answer(&name, RecordType::Cname, "The DKIM CNAME check is") else {
                token_states.push(None);
                continue;
            };
            let target = match a.records() {
                [Rdata::Name(t), ..] => t.clone(),
                _ => {
                    let has_txt = self.snap.get(&name, RecordType::Txt).is_some_and(|t| !t.records().is_empty());
                    let msg = if has_txt {
                        format!(
                            "{name} holds a TXT key instead of the CNAME: SES rotates its keys behind the CNAME, so a copied key goes stale."
                        )
                    } else {
                        format!("{name} does not exist: SES cannot verify Easy DKIM until all three CNAMEs resolve.")
                    };
                    self.find(code::DKIM_CNAME_MISSING, &name, msg, Some(fix));
                    token_states.push(Some(false));
                    continue;
                }
            };
            let right = zones.iter().any(|z| target == format!("{token}.{z}"));
            if !right {
                let hint = if target.ends_with(&format!(".{d}")) {
                    format!(
                        " The target ends in .{d}: the DNS host appended the zone name to a name given without a trailing dot."
                    )
                } else if target == format!("{token}.dkim.amazonses.com") {
                    " That is the signing zone most regions use; this region has its own.".to_string()
                } else if let Some(r) =
                    regions::REGIONS.iter().find(|r| target == format!("{token}.{}", r.dkim_signing_zone))
                {
                    format!(" That is the signing zone of {}.", r.code)
                } else {
                    String::new()
                };
                self.find(
                    code::DKIM_CNAME_WRONG_TARGET,
                    &name,
                    format!("{name} points to {target}, not {expected}.{hint}"),
                    Some(fix),
                );
                token_states.push(Some(false));
                continue;
            }
            self.pass(RecordGroup::Dkim, &name, format!("CNAME {target}"));
            token_states.push(self.dkim_key(&name, &target));
        }
        let mut groups = Vec::new();
        if !tokens.is_empty() {
            groups.push(all_of(&token_states));
        }
        for s in &selectors {
            let name = dkim_name(s, &d);
            match self.snap.get(&name, RecordType::Txt).map(|a| &a.outcome) {
                Some(Outcome::NoData | Outcome::NxDomain) => {
                    self.find(
                        code::DKIM_SELECTOR_MISSING,
                        &name,
                        format!("no DKIM key at selector `{s}` ({name})."),
                        Some(format!(
                            "{name}. TXT \"v=DKIM1; k=rsa; p=<the base64 public key the signer uses with selector {s}>\" (for BYODKIM, the key given to SES)"
                        )),
                    );
                    groups.push(Some(false));
                }
                _ => groups.push(self.dkim_key(&name, &name)),
            }
        }
        any_of(&groups)
    }
}
