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
            self.find(c, name, msg, None);
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
                    self.find(
                        code::SPF_INCLUDE_MISSING,
                        name,
                        format!("an include or redirect names {}, which has no usable SPF record: receivers return permerror.", node.domain),
                        None,
                    );
                }
                RecordState::Found { record, diagnostics }
                    if diagnostics.iter().any(|d| d.severity == Severity::Error) =>
                {
                    ok = false;
                    self.find(
                        code::SPF_SYNTAX,
                        &node.domain,
                        format!("`{record}` (included by {name}) has a syntax error: receivers return permerror."),
                        None,
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
                    None,
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
