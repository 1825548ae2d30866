//! SPF rules, for the apex and the MAIL FROM name: syntax, the include tree's lookups and
//! void lookups (RFC 7208 limits), permissive `all`, and the apex's SES include.

use super::*;
use ses_dmarc_receiver::spf::{MAX_LOOKUPS, MAX_VOID_LOOKUPS};

impl Judge<'_> {
    pub(super) fn spf_diagnostics(&mut self, name: &str, record: &str) -> bool {
        let parsed = SpfRecord::parse(record);
        let mut ok = true;
        for d in &parsed.diagnostics {
            let (c, msg) = match (d.code, d.severity) {
                (_, Severity::Error) => {
                    ok = false;
                    (code::SPF_SYNTAX, format!("`{record}`: {} ({}). Receivers return permerror.", d.message, d.code))
                }
                (c, _) if c == diag::SPF_PTR => (code::SPF_PTR, d.message.clone()),
                (c, _) if c == diag::SPF_PERMISSIVE_ALL => (code::SPF_PERMISSIVE_ALL, d.message.clone()),
                (_, Severity::Warning) => (code::SPF_LINT, format!("{} ({})", d.message, d.code)),
                (c, Severity::Info) if c == diag::SPF_NO_ALL => (code::RECORD_NOTE, d.message.clone()),
                _ => continue,
            };
            let fix = match c {
                code::SPF_SYNTAX => ses_dmarc_records::spf::repair(record, d.span.start)
                    .filter(|r| r.as_str() != record)
                    .map(|r| format!("{name}. TXT \"{r}\"")),
                code::SPF_PTR => {
                    let kept: Vec<&str> = record
                        .split_ascii_whitespace()
                        .filter(|t| {
                            let m = t.trim_start_matches(['+', '-', '~', '?']).to_ascii_lowercase();
                            m != "ptr" && !m.starts_with("ptr:")
                        })
                        .collect();
                    Some(format!(
                        "{name}. TXT \"{}\" (name the servers `ptr` stood for with ip4:, ip6: or a:)",
                        kept.join(" ")
                    ))
                }
                code::SPF_PERMISSIVE_ALL => ses_dmarc_records::spf::with_all(record, "~")
                    .map(|r| format!("{name}. TXT \"{r}\" (`-all` once every sender is listed)")),
                code::SPF_LINT => Some(lint_fix(name, record, d.code, d.span.start)),
                _ => None,
            };
            self.find(c, name, msg, fix);
        }
        ok
    }

    pub(super) fn spf_tree_rules(&mut self, name: &str, tree: &SpfTree) -> bool {
        let mut ok = true;
        for f in &tree.failed {
            self.unknown(&f.name, f.rtype, &f.failure, &format!("The SPF lookup count through `{}`", f.cause));
        }
        if tree.lookups > MAX_LOOKUPS {
            ok = false;
            let branches: Vec<String> = tree
                .root
                .terms
                .iter()
                .filter(|t| t.lookups > 0)
                .map(|t| {
                    format!("{} ({})", t.term, t.lookups + t.child.as_ref().map(|c| c.branch_lookups).unwrap_or(0))
                })
                .collect();
            self.find(
                code::SPF_TOO_MANY_LOOKUPS,
                name,
                format!("{} DNS-querying terms through all includes; RFC 7208 allows {MAX_LOOKUPS}, so receivers return permerror. By branch: {}.", tree.lookups, branches.join(", ")),
                Some("Remove includes you no longer use, or replace the heaviest branch with ip4/ip6 ranges.".into()),
            );
        }
        if tree.void_lookups > MAX_VOID_LOOKUPS {
            ok = false;
            let causes: Vec<String> = tree
                .void_causes
                .iter()
                .map(|v| format!("`{}` in {} ({} {})", v.term, v.domain, v.rtype.as_str(), v.name))
                .collect();
            self.find(
                code::SPF_VOID_LOOKUPS,
                name,
                format!(
                    "{} lookups return no records; RFC 7208 allows {MAX_VOID_LOOKUPS}: {}.",
                    tree.void_lookups,
                    causes.join("; ")
                ),
                Some("Remove the terms that name domains without records.".into()),
            );
        }
        for node in tree.nodes() {
            if node.domain == tree.root.domain {
                continue;
            }
            match &node.state {
                RecordState::Missing { .. } | RecordState::Multiple { .. } | RecordState::Quoted { .. } => {
                    ok = false;
                    let target = &node.domain;
                    // The root record without the term that names the target, when it is the
                    // root's own term; otherwise the owner of the record between must act.
                    let root = match &tree.root.state {
                        RecordState::Found { record, .. } => Some(record.as_str()),
                        _ => None,
                    };
                    let without = root.and_then(|r| {
                        let kept: Vec<&str> = r
                            .split_ascii_whitespace()
                            .filter(|t| {
                                let t = t.trim_start_matches(['+', '-', '~', '?']).to_ascii_lowercase();
                                t != format!("include:{target}") && t != format!("redirect={target}")
                            })
                            .collect();
                        (kept.len() < r.split_ascii_whitespace().count()).then(|| kept.join(" "))
                    });
                    let fix = match without {
                        Some(r) => format!("{name}. TXT \"{r}\" (or have {target} publish its SPF record)"),
                        None => format!(
                            "{target} must publish one SPF record, or the record that includes it must stop naming it"
                        ),
                    };
                    self.find(
                        code::SPF_INCLUDE_MISSING,
                        name,
                        format!("an include or redirect names {target}, which has no usable SPF record: receivers return permerror."),
                        Some(fix),
                    );
                }
                RecordState::Found { record, diagnostics }
                    if diagnostics.iter().any(|d| d.severity == Severity::Error) =>
                {
                    ok = false;
                    let at =
                        diagnostics.iter().find(|d| d.severity == Severity::Error).map(|d| d.span.start).unwrap_or(0);
                    let repaired = ses_dmarc_records::spf::repair(record, at).unwrap_or_else(|| record.clone());
                    self.find(
                        code::SPF_SYNTAX,
                        &node.domain,
                        format!("`{record}` (included by {name}) has a syntax error: receivers return permerror."),
                        Some(format!(
                            "the owner of {} publishes `{}. TXT \"{repaired}\"`, or {name} stops including it",
                            node.domain, node.domain
                        )),
                    );
                }
                _ => {}
            }
        }
        ok
    }

    /// Judges the SPF record at a name. `Some(true)` when there is one valid record.
    pub(super) fn spf_at(&mut self, name: &str, what: &str) -> (Option<bool>, Option<SpfTree>) {
        let Some(answer) = self.answer(name, RecordType::Txt, what) else { return (None, None) };
        let (spf, quoted) = select_spf(answer.records());
        if spf.is_empty() && !quoted.is_empty() {
            self.find(
                code::TXT_QUOTED_VALUE,
                name,
                format!(
                    "the TXT value is stored with literal quotes ({}), so receivers do not see an SPF record.",
                    quoted[0]
                ),
                Some(format!("{name}. TXT {}", quoted[0].trim())),
            );
            return (Some(false), None);
        }
        match spf.len() {
            0 => (Some(false), None),
            1 => {
                let syntax_ok = self.spf_diagnostics(name, &spf[0]);
                let (tree, _) = spf_tree(self.snap, name);
                let tree_ok = self.spf_tree_rules(name, &tree);
                if syntax_ok && tree_ok {
                    self.pass(
                        RecordGroup::Spf,
                        name,
                        format!(
                            "SPF `{}` (DNS-querying terms: {}, void lookups: {})",
                            spf[0], tree.lookups, tree.void_lookups
                        ),
                    );
                }
                (Some(syntax_ok && tree_ok), Some(tree))
            }
            n => {
                self.find(
                    if what.contains("MAIL FROM") { code::MAIL_FROM_SPF_MULTIPLE } else { code::SPF_MULTIPLE },
                    name,
                    format!(
                        "{n} SPF records: {}. Receivers return permerror.",
                        spf.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    ),
                    ses_dmarc_records::spf::merge(&spf.iter().map(String::as_str).collect::<Vec<_>>())
                        .map(|merged| format!("{name}. TXT \"{merged}\" (one record: delete the others)")),
                );
                (Some(false), None)
            }
        }
    }

    pub(super) fn apex_spf(&mut self, mail_from_ok: bool) {
        let d = self.snap.domain.clone();
        let (state, tree) = self.spf_at(&d, "The apex SPF checks are");
        if state == Some(false)
            && tree.is_none()
            && !self
                .findings
                .iter()
                .any(|f| f.name == d && matches!(f.code, code::SPF_MULTIPLE | code::TXT_QUOTED_VALUE))
        {
            self.find(
                code::SPF_MISSING,
                &d,
                format!("{d} has no SPF record."),
                Some(format!("{d}. TXT \"v=spf1 -all\" (if the apex sends no mail itself)")),
            );
        }
        if let Some(tree) = tree
            && mail_from_ok
            && tree
                .root
                .terms
                .iter()
                .any(|t| t.term.trim_start_matches(['+', '-', '~', '?']).eq_ignore_ascii_case("include:amazonses.com"))
        {
            self.find(
                code::SPF_APEX_SES_INCLUDE_UNALIGNED,
                &d,
                "the apex SPF includes amazonses.com, but SES mail uses the custom MAIL FROM: the include aligns nothing and costs a lookup.".into(),
                Some("remove include:amazonses.com from the apex record".into()),
            );
        }
    }
}

/// What to publish for an SPF lint warning.
fn lint_fix(name: &str, record: &str, diag_code: &str, at: usize) -> String {
    let terms: Vec<&str> = record.split_ascii_whitespace().collect();
    let bare = |t: &str| t.trim_start_matches(['+', '-', '~', '?']).to_ascii_lowercase();
    let publish = |terms: Vec<&str>, note: &str| format!("{name}. TXT \"{}\"{note}", terms.join(" "));
    match diag_code {
        c if c == diag::SPF_TERMS_AFTER_ALL => {
            let all = terms.iter().position(|t| bare(t) == "all").unwrap_or(terms.len());
            let mut moved: Vec<&str> = terms[..all].to_vec();
            moved.extend(terms[all + 1..].iter().copied());
            moved.extend(terms.get(all).copied());
            publish(moved, " (the terms after `all` moved before it: keep those you meant to authorize)")
        }
        c if c == diag::SPF_REDIRECT_WITH_ALL => publish(
            terms.into_iter().filter(|t| !bare(t).starts_with("redirect=")).collect(),
            " (or drop `all` to keep the redirect)",
        ),
        c if c == diag::SPF_IP_ALL => publish(
            terms.into_iter().filter(|t| !matches!(bare(t).as_str(), "ip4:0.0.0.0/0" | "ip6:::/0")).collect(),
            "",
        ),
        c if c == diag::SPF_RECORD_LONG || c == diag::SPF_RECORD_TOO_LONG => format!(
            "shorten the record at {name}: replace runs of ip4:/ip6: terms with a provider's include, or send some mail from a subdomain with its own record"
        ),
        _ => match ses_dmarc_records::spf::repair(record, at) {
            Some(r) if r != record => format!("{name}. TXT \"{r}\""),
            _ => format!("correct the term at byte {at} of the record at {name}"),
        },
    }
}
