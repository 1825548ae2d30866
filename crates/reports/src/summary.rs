//! Totals and pass rates over a domain's reports, overall and per source, counted in
//! messages (not rows), with the SES-specific lines; source addresses grouped by who sends
//! (a known sender, a network owner, a reverse-DNS domain, or their network).

use crate::aggregate::{ReportHeader, ReportRecord};
use crate::asn::AsnEntry;
use crate::classify::{Classified, DkimProblem, Recognised, SourceKind, SpfProblem, sender_by_asn, sender_named};
use crate::failure::FailureReport;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// One sending source's messages in a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceSummary {
    /// `Amazon SES`, a service name, `forwarded`, or the source IP.
    pub source: String,
    /// How the source was classified.
    pub kind: Option<SourceKind>,
    /// Messages from the source.
    pub messages: u64,
    /// Of those, the ones that pass DMARC.
    pub dmarc_pass: u64,
    /// Of those, the ones with SPF aligned.
    pub spf_aligned: u64,
    /// Of those, the ones with DKIM aligned.
    pub dkim_aligned: u64,
    /// Of those, the ones with a passing DKIM signature whose `d=` is the From domain
    /// itself (they would align under `adkim=s` too).
    pub dkim_strict_aligned: u64,
    /// Report periods (seconds since 1970) in which the source first and last appears.
    pub first_seen: i64,
    /// End of the last report period in which the source appears.
    pub last_seen: i64,
}

/// The Amazon SES messages of a summary, by how they align.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SesSummary {
    /// Messages sent through SES.
    pub messages: u64,
    /// SES messages aligned through the custom MAIL FROM (SPF).
    pub aligned_via_mail_from: u64,
    /// SES messages aligned through Easy DKIM.
    pub aligned_via_dkim: u64,
    /// SES messages sent with the default amazonses.com envelope.
    pub default_mail_from: u64,
    /// The SES messages by how they align and, where they do not, why: most messages first.
    pub breakdown: Vec<SesLine>,
}

/// How SES messages align.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SesAlignment {
    /// By the custom MAIL FROM (SPF) and by Easy DKIM.
    Both,
    /// By the custom MAIL FROM only.
    MailFrom,
    /// By Easy DKIM only.
    Dkim,
    /// Not at all: the messages fail DMARC.
    None,
}

/// SES messages that align the same way for the same reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SesLine {
    /// How they align.
    pub aligned_by: SesAlignment,
    /// Why SPF is not aligned, when it is not.
    pub spf_problem: Option<SpfProblem>,
    /// Why DKIM is not aligned, when it is not.
    pub dkim_problem: Option<DkimProblem>,
    /// Messages.
    pub messages: u64,
}

/// How the addresses of a [`SenderGroup`] were put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    /// A known sender (Amazon SES, Google, Microsoft, SendGrid, ...).
    Sender,
    /// Mail of the domain relayed by forwarders and lists.
    Forwarded,
    /// The organizational domain of the addresses' forward-confirmed reverse names.
    PtrDomain,
    /// The autonomous system announcing the addresses (the offline table).
    Asn,
    /// Their /24 (IPv4) or /48 (IPv6) network.
    Network,
}

/// Source addresses grouped by who sends from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderGroup {
    /// The group's name: a known sender's (`Amazon SES`, `Google`), `forwarded`, a domain
    /// (`example.net`), `AS64500 EXAMPLE-NET`, or a network (`198.51.100.0/24`).
    pub group: String,
    /// How it was put together.
    pub by: GroupBy,
    /// Who it is, when known: the service (`Google Workspace and Gmail`), the network
    /// owner's name, the reverse-DNS domain.
    pub org: Option<String>,
    /// The autonomous system, for groups by ASN (and known senders recognised by one).
    pub asn: Option<u32>,
    /// The source kind of most of its messages.
    pub kind: SourceKind,
    /// Every way its addresses were recognised.
    pub recognised_by: Vec<Recognised>,
    /// Distinct source addresses.
    pub addresses: u64,
    /// Messages.
    pub messages: u64,
    /// Of those, passing DMARC.
    pub dmarc_pass: u64,
    /// Of those, SPF-aligned.
    pub spf_aligned: u64,
    /// Of those, DKIM-aligned.
    pub dkim_aligned: u64,
    /// Start of the first report period showing it, seconds since 1970.
    pub first_seen: i64,
    /// End of the last one.
    pub last_seen: i64,
}

/// One source address, within its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressSummary {
    /// The address as the reports give it.
    pub ip: String,
    /// Its group's name ([`SenderGroup::group`]).
    pub group: String,
    /// Its line in [`Summary::sources`] (`Amazon SES`, a service, `forwarded`, or the IP).
    pub source: String,
    /// How its mail was classified.
    pub kind: SourceKind,
    /// Its forward-confirmed reverse name (`--ptr`).
    pub ptr: Option<String>,
    /// Its autonomous system (`--asn-db`).
    pub asn: Option<u32>,
    /// That system's name.
    pub asn_name: Option<String>,
    /// Messages.
    pub messages: u64,
    /// Of those, passing DMARC.
    pub dmarc_pass: u64,
    /// Of those, SPF-aligned.
    pub spf_aligned: u64,
    /// Of those, DKIM-aligned.
    pub dkim_aligned: u64,
    /// Messages by the disposition the reporters applied (`none`, `quarantine`, `reject`;
    /// `unspecified` when a report gives none).
    pub disposition: BTreeMap<String, u64>,
    /// Start of the first report period showing it, seconds since 1970.
    pub first_seen: i64,
    /// End of the last one.
    pub last_seen: i64,
}

/// What is known of a source address beyond the report: its forward-confirmed reverse
/// name and its network owner.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressFacts<'a> {
    /// The forward-confirmed reverse name.
    pub ptr: Option<&'a str>,
    /// The autonomous system from the offline table.
    pub asn: Option<AsnEntry<'a>>,
}

/// Addresses and networks in address order (`192.0.2.9` before `192.0.2.10`), other
/// names after them in text order.
fn address_order(text: &str) -> (bool, Option<IpAddr>) {
    let ip: Option<IpAddr> = text.split('/').next().and_then(|ip| ip.parse().ok());
    (ip.is_none(), ip)
}

/// The /24 (IPv4) or /48 (IPv6) holding `ip`.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & !((1u128 << 80) - 1);
            format!("{}/48", std::net::Ipv6Addr::from(masked))
        }
    }
}

/// A domain's reports summed up: totals, pass rates' parts, per-source lines, SES lines and
/// failure reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The policy domain.
    pub domain: String,
    /// Start of the earliest report period, seconds since 1970 (0 without reports).
    pub from: i64,
    /// End of the latest report period, seconds since 1970.
    pub to: i64,
    /// Aggregate reports counted.
    pub reports: u64,
    /// Messages in them.
    pub messages: u64,
    /// Messages that pass DMARC.
    pub dmarc_pass: u64,
    /// Messages with SPF aligned.
    pub spf_aligned: u64,
    /// Messages with DKIM aligned.
    pub dkim_aligned: u64,
    /// Messages whose reporter evaluated DMARC differently from the recomputation.
    pub reporter_differs: u64,
    /// Distinct days (UTC) covered by the reports.
    pub days: u32,
    /// Per source, most messages first.
    pub sources: Vec<SourceSummary>,
    /// Source addresses grouped by who sends from them, most messages first.
    pub groups: Vec<SenderGroup>,
    /// Every source address with its group, most messages first.
    pub addresses: Vec<AddressSummary>,
    /// The DMARC policies the reporters found published, as they wrote them, with the days
    /// their reports cover: how long each policy has been in force.
    pub policies: Vec<PolicySeen>,
    /// The Amazon SES messages.
    pub ses: SesSummary,
    /// The failure reports.
    pub failures: FailureSummary,
    /// Messages per day (UTC, the day each report's period begins), oldest first: the
    /// dashboard's charts.
    pub daily: Vec<DayTotals>,
}

/// One day's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DayTotals {
    /// The day: its midnight (UTC), in seconds since 1970.
    pub day: i64,
    /// Messages in reports whose period begins that day.
    pub messages: u64,
    /// Of them, those that pass DMARC.
    pub dmarc_pass: u64,
}

/// One DMARC policy as reporters found it published (`<policy_published>`), and the reports
/// that saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySeen {
    /// `p` as written, lower case (`none`, `quarantine`, `reject`; empty when missing).
    pub p: String,
    /// `pct`, when the reporter wrote it (RFC 7489 reporters).
    pub pct: Option<u8>,
    /// `testing` (RFC 9990 reporters): `true` for `y`, `false` for `n`, absent when not written.
    pub testing: Option<bool>,
    /// Distinct days (UTC) covered by the reports that saw this policy.
    pub days: u32,
    /// Start of the earliest such report, seconds since 1970.
    pub first_seen: i64,
    /// End of the latest such report, seconds since 1970.
    pub last_seen: i64,
    /// Messages in those reports.
    pub messages: u64,
    /// The days themselves (days since 1970, UTC, ascending), for joining several policies.
    #[serde(skip)]
    pub day_numbers: Vec<i64>,
}

/// The days (days since 1970, UTC) a report period covers: at most 367.
fn period_days(begin: i64, end: i64) -> std::ops::RangeInclusive<i64> {
    let (b, e) = (begin.div_euclid(86_400), end.max(begin + 1).saturating_sub(1).div_euclid(86_400));
    b..=e.min(b + 366)
}

/// The failure (forensic) reports about the domain in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureSummary {
    /// Failure reports counted.
    pub reports: u64,
    /// Reports per Auth-Failure value (`dkim`, `spf`, `dmarc`, ...; `unspecified`).
    pub by_auth_failure: BTreeMap<String, u64>,
    /// Reports per source IP (`unknown` when the report has none), most first.
    pub by_source_ip: Vec<(String, u64)>,
    /// The latest reports, newest first (at most [`RECENT_FAILURES`]).
    pub recent: Vec<FailureLine>,
}

/// Failure reports listed one by one in a summary.
pub const RECENT_FAILURES: usize = 10;

/// One failure report, as a summary lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureLine {
    /// When the message arrived, seconds since 1970.
    pub arrival_date: Option<i64>,
    /// The IP the message came from.
    pub source_ip: Option<String>,
    /// What failed (`dkim`, `spf`, `dmarc`, ...).
    pub auth_failure: Option<String>,
    /// The message's MAIL FROM.
    pub original_mail_from: Option<String>,
    /// The failing DKIM signature's `d=`.
    pub dkim_domain: Option<String>,
    /// Its `s=`.
    pub dkim_selector: Option<String>,
    /// The server that made the report.
    pub reporting_mta: Option<String>,
}

impl Summary {
    /// `part / whole`, 0 when `whole` is 0.
    pub fn rate(part: u64, whole: u64) -> f64 {
        if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
    }
}

/// Accumulates reports into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    sources: BTreeMap<String, SourceSummary>,
    days: std::collections::BTreeSet<i64>,
    failure_ips: BTreeMap<String, u64>,
    policies: BTreeMap<(String, Option<u8>, Option<bool>), PolicySeen>,
    policy_days: BTreeMap<(String, Option<u8>, Option<bool>), std::collections::BTreeSet<i64>>,
    daily: BTreeMap<i64, DayTotals>,
    ses_lines: BTreeMap<(SesAlignment, Option<SpfProblem>, Option<DkimProblem>), u64>,
    /// Per address (as parsed, or as written when it is no address): its line in each of
    /// its groups (almost always one).
    by_ip: HashMap<IpAddr, AddressLines>,
    by_text: HashMap<String, AddressLines>,
    groups: HashMap<String, GroupFacts>,
}

/// An address's line in its group, and in any other (rare: classified two ways).
#[derive(Debug)]
struct AddressLines(AddressEntry, Vec<AddressEntry>);

/// An address's line, how its group was put together, and its messages by disposition.
#[derive(Debug)]
struct AddressEntry {
    summary: AddressSummary,
    by: GroupBy,
    /// `none`, `quarantine`, `reject`, `unspecified` (the map only for other values).
    dispositions: [u64; 4],
}

/// The usual dispositions, in [`AddressEntry::dispositions`]' order.
const DISPOSITIONS: [&str; 4] = ["none", "quarantine", "reject", "unspecified"];

impl AddressEntry {
    fn into_summary(mut self) -> AddressSummary {
        for (name, n) in DISPOSITIONS.iter().zip(self.dispositions) {
            if n > 0 {
                *self.summary.disposition.entry(name.to_string()).or_default() += n;
            }
        }
        self.summary
    }
}

/// Every way of recognising, in order (a group keeps them as bits).
const RECOGNITIONS: [Recognised; 7] = [
    Recognised::Dkim,
    Recognised::Envelope,
    Recognised::Ptr,
    Recognised::Asn,
    Recognised::Forwarding,
    Recognised::PtrDomain,
    Recognised::Network,
];

/// Every source kind, in order (a group counts messages per kind).
const KINDS: [SourceKind; 4] = [SourceKind::AmazonSes, SourceKind::Known, SourceKind::Forwarded, SourceKind::Unknown];

/// What a group is, and the ways and kinds seen in it.
#[derive(Debug)]
struct GroupFacts {
    by: GroupBy,
    org: Option<String>,
    asn: Option<u32>,
    /// The ways seen, one bit per [`RECOGNITIONS`] entry.
    recognised_by: u8,
    /// Messages per kind, in [`KINDS`]' order.
    kinds: [u64; 4],
}

/// The group of an address whose mail was classified `c`.
fn group_of(
    c: &Classified,
    record: &ReportRecord,
    facts: &AddressFacts<'_>,
) -> (String, GroupBy, Option<String>, Option<u32>) {
    let asn = facts.asn.map(|a| a.asn);
    match c.kind {
        SourceKind::AmazonSes | SourceKind::Known => {
            let org = sender_named(&c.source).map(|s| s.service.to_string());
            let asn = asn.filter(|a| sender_named(&c.source).is_some_and(|s| s.asn.contains(a)));
            (c.source.clone(), GroupBy::Sender, org, asn)
        }
        SourceKind::Forwarded => ("forwarded".into(), GroupBy::Forwarded, None, None),
        SourceKind::Unknown => {
            if let Some(sender) = asn.and_then(sender_by_asn) {
                return (sender.name.to_string(), GroupBy::Sender, Some(sender.service.to_string()), asn);
            }
            if let Some(ptr) = facts.ptr {
                let org = ses_dmarc_records::DomainName::parse(ptr)
                    .map(|d| d.organizational_domain().to_string())
                    .unwrap_or_else(|_| ptr.trim_end_matches('.').to_ascii_lowercase());
                return (org.clone(), GroupBy::PtrDomain, Some(org), None);
            }
            if let Some(a) = facts.asn {
                let group = if a.name.is_empty() { format!("AS{}", a.asn) } else { format!("AS{} {}", a.asn, a.name) };
                let org = (!a.name.is_empty()).then(|| a.name.to_string());
                return (group, GroupBy::Asn, org, Some(a.asn));
            }
            let network = record.source_ip.map(network_of).unwrap_or_else(|| record.source_ip_text.clone());
            (network, GroupBy::Network, None, None)
        }
    }
}

impl SummaryBuilder {
    /// An empty summary for `domain`.
    pub fn new(domain: &str) -> Self {
        SummaryBuilder {
            summary: Summary { domain: domain.to_string(), from: i64::MAX, ..Default::default() },
            ..Default::default()
        }
    }

    /// Adds an aggregate report's header: its period and its days.
    pub fn add_report(&mut self, header: &ReportHeader) {
        let s = &mut self.summary;
        s.reports += 1;
        s.from = s.from.min(header.metadata.begin);
        s.to = s.to.max(header.metadata.end);
        for day in period_days(header.metadata.begin, header.metadata.end) {
            self.days.insert(day);
        }
    }

    /// Counts the published policy of the report a record comes from.
    fn add_policy(&mut self, header: &ReportHeader, messages: u64) {
        let m = &header.metadata;
        let policy = &header.policy;
        let testing = policy.testing.as_deref().and_then(|t| match t.trim().to_ascii_lowercase().as_str() {
            "y" => Some(true),
            "n" => Some(false),
            _ => None,
        });
        let key = (policy.p.as_deref().unwrap_or("").trim().to_ascii_lowercase(), policy.pct, testing);
        let entry = self.policies.entry(key.clone()).or_insert_with(|| PolicySeen {
            p: key.0.clone(),
            pct: key.1,
            testing: key.2,
            first_seen: m.begin,
            last_seen: m.end,
            ..Default::default()
        });
        entry.messages += messages;
        entry.first_seen = entry.first_seen.min(m.begin);
        entry.last_seen = entry.last_seen.max(m.end);
        self.policy_days.entry(key).or_default().extend(period_days(m.begin, m.end));
    }

    /// Adds one record of the report `header`, classified as `c`.
    pub fn add_record(&mut self, header: &ReportHeader, record: &ReportRecord, c: &Classified) {
        self.add_record_about(header, record, c, AddressFacts::default());
    }

    /// Adds one record of the report `header`, classified as `c`, with what is known of its
    /// source address (reverse name, network owner) for grouping.
    pub fn add_record_about(
        &mut self,
        header: &ReportHeader,
        record: &ReportRecord,
        c: &Classified,
        facts: AddressFacts<'_>,
    ) {
        self.add_address(header, record, c, &facts);
        let n = record.count;
        self.add_policy(header, n);
        let s = &mut self.summary;
        s.messages += n;
        s.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        let day = header.metadata.begin.div_euclid(86_400) * 86_400;
        let d = self.daily.entry(day).or_insert(DayTotals { day, ..DayTotals::default() });
        d.messages += n;
        d.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        let s = &mut self.summary;
        s.spf_aligned += if c.spf_aligned { n } else { 0 };
        s.dkim_aligned += if c.dkim_aligned { n } else { 0 };
        s.reporter_differs += if c.reporter_differs { n } else { 0 };
        if c.kind == SourceKind::AmazonSes {
            s.ses.messages += n;
            s.ses.aligned_via_mail_from += if c.spf_aligned { n } else { 0 };
            s.ses.aligned_via_dkim += if c.dkim_aligned { n } else { 0 };
            s.ses.default_mail_from += if c.ses_default_mail_from { n } else { 0 };
            let aligned_by = match (c.spf_aligned, c.dkim_aligned) {
                (true, true) => SesAlignment::Both,
                (true, false) => SesAlignment::MailFrom,
                (false, true) => SesAlignment::Dkim,
                (false, false) => SesAlignment::None,
            };
            *self.ses_lines.entry((aligned_by, c.spf_problem, c.dkim_problem)).or_default() += n;
        }
        let e = self.sources.entry(c.source.clone()).or_insert_with(|| SourceSummary {
            source: c.source.clone(),
            kind: Some(c.kind),
            first_seen: header.metadata.begin,
            last_seen: header.metadata.end,
            ..Default::default()
        });
        e.messages += n;
        e.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        e.spf_aligned += if c.spf_aligned { n } else { 0 };
        e.dkim_aligned += if c.dkim_aligned { n } else { 0 };
        e.dkim_strict_aligned += if c.dkim_strict { n } else { 0 };
        e.first_seen = e.first_seen.min(header.metadata.begin);
        e.last_seen = e.last_seen.max(header.metadata.end);
    }

    /// Counts the record in its address and the address in its group.
    fn add_address(&mut self, header: &ReportHeader, record: &ReportRecord, c: &Classified, facts: &AddressFacts<'_>) {
        let n = record.count;
        // The same address and classification: the same group (the facts are per address).
        let same = |e: &AddressEntry| e.summary.kind == c.kind && e.summary.source == c.source;
        let known = match record.source_ip {
            Some(ip) => self.by_ip.get(&ip),
            None => self.by_text.get(&record.source_ip_text),
        }
        .map(|AddressLines(first, more)| if same(first) { Some(0) } else { more.iter().position(same).map(|i| i + 1) });
        let index = match known {
            Some(Some(i)) => i,
            Some(None) => {
                let e = self.new_entry(header, record, c, facts);
                let lines = match record.source_ip {
                    Some(ip) => self.by_ip.get_mut(&ip),
                    None => self.by_text.get_mut(&record.source_ip_text),
                };
                let Some(AddressLines(_, more)) = lines else { return };
                more.push(e);
                more.len()
            }
            None => {
                let e = self.new_entry(header, record, c, facts);
                match record.source_ip {
                    Some(ip) => self.by_ip.insert(ip, AddressLines(e, Vec::new())),
                    None => self.by_text.insert(record.source_ip_text.clone(), AddressLines(e, Vec::new())),
                };
                0
            }
        };
        let lines = match record.source_ip {
            Some(ip) => self.by_ip.get_mut(&ip),
            None => self.by_text.get_mut(&record.source_ip_text),
        };
        let Some(AddressLines(first, more)) = lines else { return };
        let Some(entry) = (if index == 0 { Some(first) } else { more.get_mut(index - 1) }) else { return };
        let recognised = match (c.kind, entry.by) {
            (SourceKind::AmazonSes | SourceKind::Known, _) => c.recognised_by.unwrap_or(Recognised::Dkim),
            (SourceKind::Forwarded, _) => Recognised::Forwarding,
            (SourceKind::Unknown, GroupBy::Sender | GroupBy::Asn) => Recognised::Asn,
            (SourceKind::Unknown, GroupBy::PtrDomain) => Recognised::PtrDomain,
            (SourceKind::Unknown, _) => Recognised::Network,
        };
        if let Some(g) = self.groups.get_mut(entry.summary.group.as_str()) {
            g.recognised_by |= RECOGNITIONS.iter().position(|r| *r == recognised).map_or(0, |i| 1 << i);
            if let Some(i) = KINDS.iter().position(|k| *k == c.kind) {
                g.kinds[i] += n;
            }
        }
        let disposition =
            record.disposition.as_deref().map(str::trim).filter(|d| !d.is_empty()).unwrap_or("unspecified");
        match DISPOSITIONS.iter().position(|d| d.eq_ignore_ascii_case(disposition)) {
            Some(i) => entry.dispositions[i] += n,
            None => *entry.summary.disposition.entry(disposition.to_ascii_lowercase()).or_default() += n,
        }
        let a = &mut entry.summary;
        a.messages += n;
        a.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        a.spf_aligned += if c.spf_aligned { n } else { 0 };
        a.dkim_aligned += if c.dkim_aligned { n } else { 0 };
        a.first_seen = a.first_seen.min(header.metadata.begin);
        a.last_seen = a.last_seen.max(header.metadata.end);
    }

    /// A new line for the record's address, in the group its classification and facts give
    /// (made known to the group table).
    fn new_entry(
        &mut self,
        header: &ReportHeader,
        record: &ReportRecord,
        c: &Classified,
        facts: &AddressFacts<'_>,
    ) -> AddressEntry {
        let (group, by, org, asn) = group_of(c, record, facts);
        let g = self.groups.entry(group.clone()).or_insert_with(|| GroupFacts {
            by,
            org,
            asn,
            recognised_by: 0,
            kinds: [0; 4],
        });
        if g.asn.is_none() {
            g.asn = asn;
        }
        AddressEntry {
            summary: AddressSummary {
                ip: record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| record.source_ip_text.clone()),
                group,
                source: c.source.clone(),
                kind: c.kind,
                ptr: facts.ptr.map(str::to_string),
                asn: facts.asn.map(|a| a.asn),
                asn_name: facts.asn.map(|a| a.name.to_string()).filter(|n| !n.is_empty()),
                messages: 0,
                dmarc_pass: 0,
                spf_aligned: 0,
                dkim_aligned: 0,
                disposition: BTreeMap::new(),
                first_seen: header.metadata.begin,
                last_seen: header.metadata.end,
            },
            by,
            dispositions: [0; 4],
        }
    }

    /// Adds a failure report (any order).
    pub fn add_failure(&mut self, report: &FailureReport) {
        let f = &mut self.summary.failures;
        f.reports += 1;
        *f.by_auth_failure.entry(report.auth_failure.clone().unwrap_or_else(|| "unspecified".into())).or_default() += 1;
        *self.failure_ips.entry(report.source_ip.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
        f.recent.push(FailureLine {
            arrival_date: report.arrival_date,
            source_ip: report.source_ip.clone(),
            auth_failure: report.auth_failure.clone(),
            original_mail_from: report.original_mail_from.clone(),
            dkim_domain: report.dkim_domain.clone(),
            dkim_selector: report.dkim_selector.clone(),
            reporting_mta: report.reporting_mta.clone(),
        });
        f.recent.sort_by_key(|b| std::cmp::Reverse(b.arrival_date));
        f.recent.truncate(RECENT_FAILURES);
    }

    /// The summary, sources sorted by messages.
    pub fn finish(mut self) -> Summary {
        let mut ips: Vec<(String, u64)> = std::mem::take(&mut self.failure_ips).into_iter().collect();
        ips.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.summary.failures.by_source_ip = ips;
        if self.summary.from == i64::MAX {
            self.summary.from = 0;
        }
        self.summary.days = self.days.len() as u32;
        self.summary.daily = std::mem::take(&mut self.daily).into_values().collect();
        let mut sources: Vec<SourceSummary> = self.sources.into_values().collect();
        sources.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.source.cmp(&b.source)));
        self.summary.sources = sources;
        let mut lines: Vec<SesLine> = std::mem::take(&mut self.ses_lines)
            .into_iter()
            .map(|((aligned_by, spf_problem, dkim_problem), messages)| SesLine {
                aligned_by,
                spf_problem,
                dkim_problem,
                messages,
            })
            .collect();
        lines.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.aligned_by.cmp(&b.aligned_by)));
        self.summary.ses.breakdown = lines;
        let mut addresses: Vec<AddressSummary> = std::mem::take(&mut self.by_ip)
            .into_values()
            .chain(std::mem::take(&mut self.by_text).into_values())
            .flat_map(|AddressLines(first, more)| std::iter::once(first).chain(more))
            .map(AddressEntry::into_summary)
            .collect();
        addresses.sort_by_cached_key(|a| {
            let (named, ip) = address_order(&a.ip);
            (std::cmp::Reverse(a.messages), named, ip, a.ip.clone(), a.group.clone())
        });
        let mut groups: HashMap<String, SenderGroup> = HashMap::new();
        for a in &addresses {
            let g = groups.entry(a.group.clone()).or_insert_with(|| {
                let facts = self.groups.get(&a.group);
                SenderGroup {
                    group: a.group.clone(),
                    by: facts.map(|f| f.by).unwrap_or(GroupBy::Network),
                    org: facts.and_then(|f| f.org.clone()),
                    asn: facts.and_then(|f| f.asn),
                    kind: facts
                        .and_then(|f| {
                            // The kind of most messages; on a tie the first in KINDS.
                            KINDS.iter().zip(f.kinds).rev().max_by_key(|(_, n)| *n).map(|(k, _)| *k)
                        })
                        .unwrap_or(SourceKind::Unknown),
                    recognised_by: facts
                        .map(|f| {
                            RECOGNITIONS
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| f.recognised_by & (1 << i) != 0)
                                .map(|(_, r)| *r)
                                .collect()
                        })
                        .unwrap_or_default(),
                    addresses: 0,
                    messages: 0,
                    dmarc_pass: 0,
                    spf_aligned: 0,
                    dkim_aligned: 0,
                    first_seen: a.first_seen,
                    last_seen: a.last_seen,
                }
            });
            g.addresses += 1;
            g.messages += a.messages;
            g.dmarc_pass += a.dmarc_pass;
            g.spf_aligned += a.spf_aligned;
            g.dkim_aligned += a.dkim_aligned;
            g.first_seen = g.first_seen.min(a.first_seen);
            g.last_seen = g.last_seen.max(a.last_seen);
        }
        let mut groups: Vec<SenderGroup> = groups.into_values().collect();
        groups.sort_by_cached_key(|g| {
            let (named, ip) = address_order(&g.group);
            (std::cmp::Reverse(g.messages), std::cmp::Reverse(g.addresses), named, ip, g.group.clone())
        });
        self.summary.groups = groups;
        self.summary.addresses = addresses;
        let mut policy_days = std::mem::take(&mut self.policy_days);
        self.summary.policies = std::mem::take(&mut self.policies)
            .into_iter()
            .map(|(key, mut p)| {
                p.day_numbers = policy_days.remove(&key).unwrap_or_default().into_iter().collect();
                p.days = p.day_numbers.len() as u32;
                p
            })
            .collect();
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{DkimAuth, SpfAuth};
    use crate::asn::AsnEntry;
    use crate::classify::classify;

    fn rec(ip: &str, count: u64, dkim: &str, spf: &str, disposition: Option<&str>) -> ReportRecord {
        ReportRecord {
            source_ip: ip.parse().ok(),
            source_ip_text: ip.into(),
            count,
            header_from: "example.com".into(),
            disposition: disposition.map(str::to_string),
            dkim: (!dkim.is_empty())
                .then(|| DkimAuth { domain: dkim.into(), result: "pass".into(), ..Default::default() })
                .into_iter()
                .collect(),
            spf: vec![SpfAuth { domain: spf.into(), result: "pass".into(), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn addresses_group_by_sender_network_owner_reverse_domain_or_network() {
        let mut h = ReportHeader::default();
        h.policy.domain = "example.com".into();
        h.metadata.begin = 86_400;
        h.metadata.end = 2 * 86_400;
        let mut b = SummaryBuilder::new("example.com");
        b.add_report(&h);
        let google = AsnEntry { asn: 15169, name: "GOOGLE" };
        let isp = AsnEntry { asn: 64500, name: "" };
        let rows: [(ReportRecord, AddressFacts<'_>); 8] = [
            (rec("54.240.8.1", 10, "amazonses.com", "mail.example.com", Some("none")), AddressFacts::default()),
            (rec("54.240.8.1", 5, "amazonses.com", "mail.example.com", None), AddressFacts::default()),
            (
                rec("209.85.1.1", 3, "example.com", "example.com", Some("none")),
                AddressFacts { ptr: None, asn: Some(google) },
            ),
            (
                rec("192.0.2.7", 2, "", "evil.test", Some("Reject")),
                AddressFacts { ptr: Some("mail.shop.example.co.uk."), asn: Some(isp) },
            ),
            (rec("192.0.2.8", 1, "", "evil.test", Some("reject")), AddressFacts { ptr: None, asn: Some(isp) }),
            (rec("198.51.100.9", 1, "", "evil.test", None), AddressFacts::default()),
            (rec("198.51.100.10", 1, "", "evil.test", None), AddressFacts::default()),
            (rec("2001:db8:1:2::9", 4, "", "evil.test", None), AddressFacts::default()),
        ];
        for (r, facts) in &rows {
            let c = classify(r, &h.policy, facts.ptr);
            b.add_record_about(&h, r, &c, *facts);
        }
        let s = b.finish();
        let groups: Vec<(&str, GroupBy, u64, u64)> =
            s.groups.iter().map(|g| (g.group.as_str(), g.by, g.addresses, g.messages)).collect();
        assert_eq!(
            groups,
            [
                ("Amazon SES", GroupBy::Sender, 1, 15),
                ("2001:db8:1::/48", GroupBy::Network, 1, 4),
                ("Google", GroupBy::Sender, 1, 3),
                ("198.51.100.0/24", GroupBy::Network, 2, 2),
                ("example.co.uk", GroupBy::PtrDomain, 1, 2),
                ("AS64500", GroupBy::Asn, 1, 1),
            ]
        );
        assert_eq!(s.groups[2].recognised_by, [Recognised::Asn]);
        assert_eq!(s.groups[2].org.as_deref(), Some("Google Workspace and Gmail"));
        assert_eq!(s.groups[4].org.as_deref(), Some("example.co.uk"));
        assert_eq!(s.groups[5].org, None, "a nameless AS");
        let ses = &s.addresses[0];
        assert_eq!((ses.ip.as_str(), ses.messages, ses.kind), ("54.240.8.1", 15, SourceKind::AmazonSes));
        assert_eq!(ses.disposition, BTreeMap::from([("none".to_string(), 10), ("unspecified".to_string(), 5)]));
        let shop = s.addresses.iter().find(|a| a.ip == "192.0.2.7").unwrap();
        assert_eq!(
            (shop.ptr.as_deref(), shop.asn, shop.asn_name.as_deref()),
            (Some("mail.shop.example.co.uk."), Some(64500), None)
        );
        assert_eq!(shop.disposition.get("reject"), Some(&2), "dispositions in lower case");
        assert_eq!(s.addresses.len(), 7);
        assert_eq!(s.groups.iter().map(|g| g.messages).sum::<u64>(), s.messages);
        assert_eq!(s.ses.breakdown.len(), 1);
        assert_eq!((s.ses.breakdown[0].aligned_by, s.ses.breakdown[0].messages), (SesAlignment::MailFrom, 15));
        assert_eq!(s.ses.breakdown[0].dkim_problem, Some(DkimProblem::NoDomainSignature));
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        assert_eq!(network_of("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(network_of("2001:db8:abcd:12:34::1".parse().unwrap()), "2001:db8:abcd::/48");
        assert_eq!(network_of("::ffff:192.0.2.1".parse().unwrap()), "::/48");
    }
}
