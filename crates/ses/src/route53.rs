//! What applying a plan to a Route 53 hosted zone changes: the plan against the record
//! sets already there. Pure. Rules: never delete; never replace what belongs to something
//! else (another MX, another DMARC policy, a CNAME in the way); an SPF record already at
//! a name gets `include:amazonses.com` merged into it instead of a second SPF record; the
//! other TXT values at a name are kept. The one deliberate exception is the rollout's next
//! DMARC record ([`PublishedDmarc::Replace`]): it replaces the published policy, and only
//! that value, when the zone holds the policy the rollout was judged on.

use crate::plan::{Plan, PlannedRecord, Purpose, RecordData};
use crate::regions;
use serde::Serialize;
use ses_dmarc_records::spf::add_include;
use ses_dmarc_records::txt;

/// A record set as Route 53 lists it: values in presentation form (TXT quoted, names
/// absolute or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSet {
    /// Owner name as Route 53 writes it (absolute, `\052` for `*`).
    pub name: String,
    /// Record type (`TXT`, `MX`, `CNAME`, ...).
    pub rtype: String,
    /// Seconds; absent for alias record sets.
    pub ttl: Option<i64>,
    /// The values in presentation form (TXT values quoted, perhaps in several strings).
    pub values: Vec<String>,
}

/// What applying a plan does with one record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// No such record set yet: it is created.
    Create,
    /// The set exists and gets the planned value (other TXT values kept, an SPF include merged).
    Update,
    /// The set already holds the planned value.
    Unchanged,
    /// Something else already sits there: left alone, with the reason.
    Conflict,
    /// Not applied (a placeholder the plan could not fill).
    Skipped,
}

/// One planned record set after comparison with the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What applying does with the set.
    pub kind: ChangeKind,
    /// Absolute, with the trailing dot Route 53 uses.
    pub name: String,
    /// Record type (`MX`, `TXT`, `CNAME`).
    pub rtype: &'static str,
    /// The TTL the set gets, in seconds.
    pub ttl: u32,
    /// The values there now (presentation form).
    pub before: Vec<String>,
    /// The values the set gets (Create, Update); `before` otherwise.
    pub after: Vec<String>,
    /// Why a set is left alone, or what an update changes.
    pub note: Option<String>,
}

impl Change {
    /// True for the changes sent to Route 53 (create, update).
    pub fn is_submitted(&self) -> bool {
        matches!(self.kind, ChangeKind::Create | ChangeKind::Update)
    }
}

/// Lower case, no trailing dot, Route 53's octal escapes undone (`\052` is `*`).
pub fn normalize_name(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name.trim_end_matches('.');
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let digits = rest.get(i + 1..i + 4).filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        match digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out.to_ascii_lowercase()
}

fn host(value: &str) -> String {
    value.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `10 feedback-smtp.us-east-1.amazonses.com.` → (10, `feedback-smtp.us-east-1.amazonses.com`).
fn mx_value(value: &str) -> Option<(u16, String)> {
    let (pref, exchange) = value.trim().split_once(char::is_whitespace)?;
    Some((pref.parse().ok()?, host(exchange)))
}

fn txt_text(value: &str) -> String {
    txt::parse_presentation(value).unwrap_or_else(|| value.trim_matches('"').to_string())
}

fn is_spf(text: &str) -> bool {
    ses_dmarc_records::spf::is_spf1(text)
}

fn is_dmarc(text: &str) -> bool {
    text.trim_start().to_ascii_lowercase().starts_with("v=dmarc1")
}

/// What to do with a DMARC policy already published where a planned DMARC record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedDmarc<'a> {
    /// Keep it (a conflict): `apply`, which never changes a policy in force.
    Keep,
    /// Replace it with the planned record: `rollout --apply`. `expected` is the policy the
    /// rollout read from DNS (`None`: none); when the zone holds another one (DNS not yet
    /// in step with the zone, or a change since), it is kept as a conflict instead.
    Replace {
        /// The record the rollout judged, as DNS answered it.
        expected: Option<&'a str>,
    },
}

/// Compares the plan with the zone's record sets (`existing`: every set in the zone, or at
/// least every set at the plan's names).
pub fn diff(plan: &Plan, existing: &[RecordSet]) -> Vec<Change> {
    diff_records(&plan.records, existing, PublishedDmarc::Keep)
}

/// Compares planned records with the zone's record sets, with `dmarc` saying what to do
/// with a DMARC policy already published at a planned DMARC record's name.
pub fn diff_records(records: &[PlannedRecord], existing: &[RecordSet], dmarc: PublishedDmarc<'_>) -> Vec<Change> {
    let at = |name: &str, rtype: &str| {
        existing.iter().find(|s| normalize_name(&s.name) == name && s.rtype.eq_ignore_ascii_case(rtype))
    };
    let mut out = Vec::new();
    for r in records {
        let name = r.name.to_ascii_lowercase();
        let rtype = r.data.type_name();
        let mut change = Change {
            kind: ChangeKind::Create,
            name: format!("{name}."),
            rtype,
            ttl: r.ttl,
            before: vec![],
            after: vec![],
            note: None,
        };
        if r.placeholder {
            change.kind = ChangeKind::Skipped;
            change.note = Some("DKIM token unknown: pass --dkim-token (three per region) or --from-ses".into());
            out.push(change);
            continue;
        }
        let wanted = match &r.data {
            RecordData::Mx { preference, exchange } => format!("{preference} {exchange}."),
            RecordData::Txt { text } => txt::presentation(text),
            RecordData::Cname { target } => format!("{target}."),
        };
        let cname_here = at(&name, "CNAME");
        let others_here: Vec<&RecordSet> = existing
            .iter()
            .filter(|s| normalize_name(&s.name) == name && !s.rtype.eq_ignore_ascii_case("CNAME"))
            .collect();
        if let (Some(cname), false) = (cname_here, rtype == "CNAME") {
            change.kind = ChangeKind::Conflict;
            change.before = cname.values.clone();
            change.after = cname.values.clone();
            change.note = Some(format!(
                "a CNAME to {} sits at {name}: no other record may share its name; remove it or pick another MAIL FROM name",
                cname.values.join(", ")
            ));
            out.push(change);
            continue;
        }
        if rtype == "CNAME" && !others_here.is_empty() {
            let types: Vec<&str> = others_here.iter().map(|s| s.rtype.as_str()).collect();
            change.kind = ChangeKind::Conflict;
            change.note =
                Some(format!("{name} already has {} records; a CNAME cannot sit beside them", types.join(", ")));
            out.push(change);
            continue;
        }
        let current = at(&name, rtype);
        let Some(current) = current else {
            if let (Purpose::Dmarc, PublishedDmarc::Replace { expected: Some(e) }) = (r.purpose, dmarc) {
                change.kind = ChangeKind::Conflict;
                change.note = Some(format!(
                    "the zone holds no DMARC record, but DNS answered {e}: is this the zone the world sees? Nothing changed"
                ));
            } else {
                change.after = vec![wanted];
            }
            out.push(change);
            continue;
        };
        change.before = current.values.clone();
        match &r.data {
            RecordData::Cname { target } => {
                if current.values.iter().any(|v| host(v) == *target) {
                    unchanged(&mut change);
                } else {
                    change.kind = ChangeKind::Update;
                    change.after = vec![wanted];
                    change.note =
                        Some(format!("the DKIM token's CNAME points to {}: corrected", current.values.join(", ")));
                }
            }
            RecordData::Mx { preference, exchange } => {
                let values: Vec<Option<(u16, String)>> = current.values.iter().map(|v| mx_value(v)).collect();
                if values.len() == 1 && values[0].as_ref() == Some(&(*preference, exchange.clone())) {
                    unchanged(&mut change);
                } else if values
                    .iter()
                    .all(|v| v.as_ref().is_some_and(|(_, h)| regions::region_of_feedback_host(h).is_some()))
                {
                    change.kind = ChangeKind::Update;
                    change.after = vec![wanted];
                    change.note = Some("an SES feedback MX for another region (or several) replaced by one".into());
                } else {
                    change.kind = ChangeKind::Conflict;
                    change.after = change.before.clone();
                    change.note = Some(format!(
                        "{name} already receives mail through MX {}: a MAIL FROM domain needs its own name; pick another --mail-from",
                        current.values.join(", ")
                    ));
                }
            }
            RecordData::Txt { text } => {
                let texts: Vec<String> = current.values.iter().map(|v| txt_text(v)).collect();
                if let (Purpose::Dmarc, PublishedDmarc::Replace { expected }) = (r.purpose, dmarc) {
                    replace_dmarc(&mut change, &current.values, &texts, text, wanted, expected);
                } else if texts.iter().any(|t| t == text) {
                    unchanged(&mut change);
                } else if r.purpose == Purpose::Dmarc {
                    match texts.iter().find(|t| is_dmarc(t)) {
                        Some(existing_dmarc) => {
                            change.kind = ChangeKind::Conflict;
                            change.after = change.before.clone();
                            change.note = Some(format!(
                                "a DMARC record is already published ({existing_dmarc}): kept; `ses-dmarc rollout` says when to change it"
                            ));
                        }
                        None => add_value(&mut change, &current.values, wanted),
                    }
                } else if is_spf(text) {
                    let spf_index = texts.iter().position(|t| is_spf(t));
                    match spf_index.and_then(|i| add_include(&texts[i], "amazonses.com").map(|m| (i, m))) {
                        Some((i, merged)) if merged == texts[i] => unchanged(&mut change),
                        Some((i, merged)) => {
                            change.kind = ChangeKind::Update;
                            change.after = current.values.clone();
                            change.after[i] = txt::presentation(&merged);
                            change.note = Some(format!(
                                "include:amazonses.com merged into the SPF record already there ({}); one SPF record per name",
                                texts[i]
                            ));
                        }
                        None => add_value(&mut change, &current.values, wanted),
                    }
                } else {
                    add_value(&mut change, &current.values, wanted);
                }
            }
        }
        out.push(change);
    }
    out
}

/// The rollout's DMARC record against the TXT values at `_dmarc`: the published policy
/// replaced (the other TXT values kept), unless the zone holds another policy than the one
/// the rollout judged.
fn replace_dmarc(
    change: &mut Change,
    values: &[String],
    texts: &[String],
    text: &str,
    wanted: String,
    expected: Option<&str>,
) {
    let published: Vec<&String> = texts.iter().filter(|t| is_dmarc(t)).collect();
    let same = |a: &str, b: &str| a.trim() == b.trim();
    if published.len() == 1 && same(published[0], text) {
        return unchanged(change);
    }
    let matches_expected = match expected {
        Some(e) => published.len() == 1 && same(published[0], e),
        None => published.is_empty(),
    };
    if !matches_expected {
        change.kind = ChangeKind::Conflict;
        change.after = change.before.clone();
        let zone = if published.is_empty() {
            "no DMARC record".to_string()
        } else {
            published.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" and ")
        };
        change.note = Some(format!(
            "the zone holds {zone}, but DNS answered {}: kept; run `ses-dmarc rollout` again once DNS shows what the zone holds",
            expected.unwrap_or("no DMARC record")
        ));
        return;
    }
    change.kind = ChangeKind::Update;
    let mut after: Vec<String> = Vec::new();
    let mut placed = false;
    for (value, t) in values.iter().zip(texts) {
        if is_dmarc(t) {
            if !placed {
                after.push(wanted.clone());
                placed = true;
            }
        } else {
            after.push(value.clone());
        }
    }
    if !placed {
        after.push(wanted);
    }
    change.after = after;
    change.note = Some(match published.first() {
        Some(old) => format!("the DMARC policy replaced (rollout): {old} → {text}"),
        None => "the DMARC record added beside the TXT values already there (kept)".into(),
    });
}

fn unchanged(change: &mut Change) {
    change.kind = ChangeKind::Unchanged;
    change.after = change.before.clone();
}

fn add_value(change: &mut Change, current: &[String], wanted: String) {
    change.kind = ChangeKind::Update;
    change.after = current.to_vec();
    change.after.push(wanted);
    change.note = Some("added beside the TXT values already there (kept)".into());
}

/// The Route 53 ChangeBatch (as JSON, the API's shape) of the changes to submit: UPSERTs
/// for updates, CREATEs for new sets (so that a set created meanwhile makes the batch fail
/// instead of being overwritten).
pub fn change_batch(changes: &[Change], comment: &str) -> serde_json::Value {
    let list: Vec<serde_json::Value> = changes
        .iter()
        .filter(|c| c.is_submitted())
        .map(|c| {
            serde_json::json!({
                "Action": if c.kind == ChangeKind::Create { "CREATE" } else { "UPSERT" },
                "ResourceRecordSet": {
                    "Name": c.name,
                    "Type": c.rtype,
                    "TTL": c.ttl,
                    "ResourceRecords": c.after.iter().map(|v| serde_json::json!({"Value": v})).collect::<Vec<_>>(),
                }
            })
        })
        .collect();
    serde_json::json!({ "Comment": comment, "Changes": list })
}

/// A Route 53 hosted zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostedZone {
    /// The zone's name, with the trailing dot as Route 53 writes it.
    pub name: String,
    /// `/hostedzone/Z...` or the bare id.
    pub id: String,
    /// A private zone (answers only inside a VPC): never the one the world sees.
    pub private: bool,
}

impl HostedZone {
    /// Whether the zone holds `domain` (the zone's apex or a name below it).
    pub fn holds(&self, domain: &str) -> bool {
        let (domain, zone) = (normalize_name(domain), normalize_name(&self.name));
        domain == zone || domain.ends_with(&format!(".{zone}"))
    }
}

/// The hosted zone for `domain` among `zones`: the deepest public zone whose name is the
/// domain or one of its parents.
pub fn pick_zone<'z>(domain: &str, zones: &'z [HostedZone]) -> Option<&'z HostedZone> {
    zones.iter().filter(|z| !z.private && z.holds(domain)).max_by_key(|z| normalize_name(&z.name).len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanInput, plan};

    fn the_plan() -> Plan {
        plan(&PlanInput {
            domain: "example.com".into(),
            regions: vec!["us-east-1".into()],
            mail_from: Some("mail".into()),
            dkim_tokens: vec!["tok1".into(), "tok2".into(), "tok3".into()],
            rua: vec!["mailto:dmarc@example.com".into()],
            ..Default::default()
        })
        .unwrap()
    }

    fn set(name: &str, rtype: &str, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: rtype.into(),
            ttl: Some(300),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<(String, ChangeKind)> {
        changes.iter().map(|c| (format!("{} {}", c.name, c.rtype), c.kind)).collect()
    }

    #[test]
    fn empty_zone_creates_everything_and_the_same_zone_again_changes_nothing() {
        let p = the_plan();
        let first = diff(&p, &[]);
        assert!(first.iter().all(|c| c.kind == ChangeKind::Create), "{first:?}");
        assert_eq!(first.len(), 6);
        let published: Vec<RecordSet> = first
            .iter()
            .map(|c| RecordSet {
                name: c.name.clone(),
                rtype: c.rtype.into(),
                ttl: Some(c.ttl.into()),
                values: c.after.clone(),
            })
            .collect();
        let again = diff(&p, &published);
        assert!(again.iter().all(|c| c.kind == ChangeKind::Unchanged), "{again:?}");
        assert_eq!(change_batch(&again, "x")["Changes"].as_array().unwrap().len(), 0);
        let batch = change_batch(&first, "x");
        assert_eq!(batch["Changes"][0]["Action"], "CREATE");
        assert_eq!(
            batch["Changes"][0]["ResourceRecordSet"]["ResourceRecords"][0]["Value"],
            "10 feedback-smtp.us-east-1.amazonses.com."
        );
    }

    #[test]
    fn spf_is_merged_other_txt_kept_and_foreign_records_left_alone() {
        let p = the_plan();
        let existing = [
            set(
                "mail.example.com.",
                "TXT",
                &["\"google-site-verification=abc\"", "\"v=spf1 include:_spf.google.com -all\""],
            ),
            set("mail.example.com.", "MX", &["10 feedback-smtp.eu-west-1.amazonses.com."]),
            set("tok1._domainkey.example.com.", "CNAME", &["tok1.dkim.wrong.example."]),
            set("tok2._domainkey.example.com.", "CNAME", &["tok2.dkim.amazonses.com"]),
            set("_dmarc.example.com.", "TXT", &["\"v=DMARC1; p=reject\""]),
        ];
        let changes = diff(&p, &existing);
        let k = kinds(&changes);
        assert_eq!(
            k,
            [
                ("mail.example.com. MX".to_string(), ChangeKind::Update),
                ("mail.example.com. TXT".to_string(), ChangeKind::Update),
                ("tok1._domainkey.example.com. CNAME".to_string(), ChangeKind::Update),
                ("tok2._domainkey.example.com. CNAME".to_string(), ChangeKind::Unchanged),
                ("tok3._domainkey.example.com. CNAME".to_string(), ChangeKind::Create),
                ("_dmarc.example.com. TXT".to_string(), ChangeKind::Conflict),
            ]
        );
        assert_eq!(
            changes[1].after,
            ["\"google-site-verification=abc\"", "\"v=spf1 include:_spf.google.com include:amazonses.com -all\""]
        );
        // A real mail host at the MAIL FROM name, or a CNAME there, is never replaced.
        let foreign = [set("mail.example.com", "MX", &["10 mx.provider.test."])];
        assert_eq!(diff(&p, &foreign)[0].kind, ChangeKind::Conflict);
        let cname = [set("mail.example.com", "CNAME", &["elsewhere.test."])];
        let c = diff(&p, &cname);
        assert_eq!((c[0].kind, c[1].kind), (ChangeKind::Conflict, ChangeKind::Conflict));
    }

    #[test]
    fn the_rollout_replaces_the_dmarc_policy_it_judged_and_nothing_else() {
        let next = PlannedRecord {
            name: "_dmarc.example.com".into(),
            ttl: 1800,
            data: RecordData::Txt { text: "v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y".into() },
            purpose: Purpose::Dmarc,
            region: None,
            placeholder: false,
        };
        let now = "v=DMARC1; p=none; rua=mailto:d@example.com";
        let zone = [
            set(
                "_dmarc.example.com.",
                "TXT",
                &["\"site-verification=1\"", "\"v=DMARC1; p=none; rua=mailto:d@example.com\""],
            ),
            set("mail.example.com.", "MX", &["10 feedback-smtp.us-east-1.amazonses.com."]),
        ];
        let c = diff_records(std::slice::from_ref(&next), &zone, PublishedDmarc::Replace { expected: Some(now) });
        assert_eq!(c.len(), 1, "only the DMARC record: {c:?}");
        assert_eq!(c[0].kind, ChangeKind::Update);
        assert_eq!(c[0].before, zone[0].values);
        assert_eq!(
            c[0].after,
            ["\"site-verification=1\"", "\"v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y\""]
        );
        assert!(c[0].note.as_deref().unwrap().starts_with("the DMARC policy replaced (rollout): v=DMARC1; p=none"));
        // The zone holds another policy than DNS answered: kept.
        let c = diff_records(
            std::slice::from_ref(&next),
            &zone,
            PublishedDmarc::Replace { expected: Some("v=DMARC1; p=reject") },
        );
        assert_eq!(c[0].kind, ChangeKind::Conflict);
        // Already published: unchanged. `apply` keeps a published policy as before.
        let done =
            [set("_dmarc.example.com", "TXT", &["\"v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y\""])];
        let c = diff_records(std::slice::from_ref(&next), &done, PublishedDmarc::Replace { expected: Some(now) });
        assert_eq!(c[0].kind, ChangeKind::Unchanged);
        let c = diff_records(std::slice::from_ref(&next), &zone, PublishedDmarc::Keep);
        assert_eq!(c[0].kind, ChangeKind::Conflict);
        // Nothing there yet, and DNS agrees: created; DNS knows a record the zone lacks: kept.
        let c = diff_records(std::slice::from_ref(&next), &[], PublishedDmarc::Replace { expected: None });
        assert_eq!(c[0].kind, ChangeKind::Create);
        let c = diff_records(std::slice::from_ref(&next), &[], PublishedDmarc::Replace { expected: Some(now) });
        assert_eq!(c[0].kind, ChangeKind::Conflict);
    }

    #[test]
    fn zones_and_names() {
        let zone = |name: &str, id: &str, private| HostedZone { name: name.into(), id: id.into(), private };
        let zones = vec![
            zone("example.com.", "/hostedzone/A", false),
            zone("sub.example.com.", "/hostedzone/B", false),
            zone("mail.sub.example.com.", "/hostedzone/C", true),
            zone("other.com.", "/hostedzone/D", false),
        ];
        assert_eq!(pick_zone("mail.sub.example.com", &zones).unwrap().id, "/hostedzone/B");
        assert_eq!(pick_zone("Example.COM.", &zones).unwrap().id, "/hostedzone/A");
        assert!(pick_zone("example.org", &zones).is_none());
        assert_eq!(normalize_name("\\052.Example.com."), "*.example.com");
    }
}
