//! parse(format(x)) == x for every record type, over generated records.

use proptest::prelude::*;
use ses_dmarc_records::dkim::DkimKeyRecord;
use ses_dmarc_records::dmarc::{AlignmentMode, DmarcRecord, FailureOption, Policy, Psd, ReportUri};
use ses_dmarc_records::domain::DomainName;
use ses_dmarc_records::spf::{
    Directive, DualCidr, Macro, MacroLetter, MacroPart, MacroString, Mechanism, Modifier, Qualifier, SpfRecord, Term,
};

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn toplabel() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{1,8}"
}

fn hostname() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), toplabel()).prop_map(|(mut ls, t)| {
        ls.push(t);
        ls.join(".")
    })
}

fn macro_letter(exp: bool) -> impl Strategy<Value = MacroLetter> {
    let mut letters = vec![
        MacroLetter::Sender,
        MacroLetter::LocalPart,
        MacroLetter::SenderDomain,
        MacroLetter::Domain,
        MacroLetter::Ip,
        MacroLetter::ValidatedName,
        MacroLetter::IpVersion,
        MacroLetter::Helo,
    ];
    if exp {
        letters.extend([MacroLetter::ClientIp, MacroLetter::Receiver, MacroLetter::Timestamp]);
    }
    prop::sample::select(letters)
}

fn macro_part(exp: bool) -> impl Strategy<Value = MacroPart> {
    prop_oneof![
        3 => "[!-$&-~]{1,8}".prop_map(MacroPart::Literal),
        2 => (macro_letter(exp), any::<bool>(), prop::option::of(1u32..200), any::<bool>(), "[.+,/_=-]{0,3}")
            .prop_map(|(letter, url_escape, digits, reverse, delimiters)| MacroPart::Macro(Macro { letter, url_escape, digits, reverse, delimiters })),
        1 => Just(MacroPart::Percent),
        1 => Just(MacroPart::Space),
        1 => Just(MacroPart::UrlSpace),
    ]
}

/// Adjacent literals are one literal once parsed.
fn normalize(parts: Vec<MacroPart>) -> MacroString {
    let mut out: Vec<MacroPart> = Vec::new();
    for p in parts {
        match (out.last_mut(), p) {
            (Some(MacroPart::Literal(a)), MacroPart::Literal(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    MacroString(out)
}

fn domain_spec(exp: bool) -> impl Strategy<Value = MacroString> {
    prop_oneof![
        hostname().prop_map(|h| MacroString::literal(&h)),
        (prop::collection::vec(macro_part(exp), 0..4), hostname()).prop_map(|(mut parts, h)| {
            parts.push(MacroPart::Literal(format!(".{h}")));
            normalize(parts)
        }),
        (prop::collection::vec(macro_part(exp), 0..4), macro_letter(exp)).prop_map(|(mut parts, letter)| {
            parts.push(MacroPart::Macro(Macro {
                letter,
                url_escape: false,
                digits: None,
                reverse: false,
                delimiters: String::new(),
            }));
            normalize(parts)
        }),
    ]
}

fn dual_cidr() -> impl Strategy<Value = DualCidr> {
    (prop::option::of(0u8..=32), prop::option::of(0u8..=128)).prop_map(|(v4, v6)| DualCidr { v4, v6 })
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop_oneof![
        Just(Mechanism::All),
        domain_spec(false).prop_map(Mechanism::Include),
        (prop::option::of(domain_spec(false)), dual_cidr()).prop_map(|(domain, cidr)| Mechanism::A { domain, cidr }),
        (prop::option::of(domain_spec(false)), dual_cidr()).prop_map(|(domain, cidr)| Mechanism::Mx { domain, cidr }),
        prop::option::of(domain_spec(false)).prop_map(Mechanism::Ptr),
        (any::<[u8; 4]>(), prop::option::of(0u8..=32))
            .prop_map(|(a, prefix)| Mechanism::Ip4 { addr: a.into(), prefix }),
        (any::<[u8; 16]>(), prop::option::of(0u8..=128))
            .prop_map(|(a, prefix)| Mechanism::Ip6 { addr: a.into(), prefix }),
        domain_spec(false).prop_map(Mechanism::Exists),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    let qualifier = prop::option::of(prop::sample::select(vec![
        Qualifier::Pass,
        Qualifier::Fail,
        Qualifier::SoftFail,
        Qualifier::Neutral,
    ]));
    prop_oneof![
        6 => (qualifier, mechanism()).prop_map(|(qualifier, mechanism)| Term::Directive(Directive { qualifier, mechanism })),
        1 => domain_spec(false).prop_map(|d| Term::Modifier(Modifier::Redirect(d))),
        1 => domain_spec(false).prop_map(|d| Term::Modifier(Modifier::Exp(d))),
        1 => ("x[a-z0-9_.-]{0,6}", prop::collection::vec(macro_part(false), 0..3))
            .prop_map(|(name, parts)| Term::Modifier(Modifier::Unknown { name, value: normalize(parts) })),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![Policy::None, Policy::Quarantine, Policy::Reject])
}

fn alignment() -> impl Strategy<Value = AlignmentMode> {
    prop::sample::select(vec![AlignmentMode::Relaxed, AlignmentMode::Strict])
}

fn report_uris() -> impl Strategy<Value = Vec<ReportUri>> {
    prop::collection::vec(
        ("[a-z0-9.+_-]{1,10}", hostname(), prop::option::of("[1-9][0-9]{0,3}[kmgt]?"))
            .prop_map(|(local, host, size_limit)| ReportUri { uri: format!("mailto:{local}@{host}"), size_limit }),
        0..3,
    )
}

prop_compose! {
    fn dmarc_record()(
        policy in prop::option::of(policy()),
        subdomain_policy in prop::option::of(policy()),
        nonexistent_policy in prop::option::of(policy()),
        adkim in prop::option::of(alignment()),
        aspf in prop::option::of(alignment()),
        failure_options in prop::option::of(prop::collection::vec(prop::sample::select(vec![FailureOption::AllFail, FailureOption::AnyFail, FailureOption::Dkim, FailureOption::Spf]), 1..4)),
        pct in prop::option::of(0u8..=100),
        report_format in prop::option::of(Just("afrf".to_string())),
        report_interval in prop::option::of(any::<u32>()),
        rua in report_uris(),
        ruf in report_uris(),
        psd in prop::option::of(prop::sample::select(vec![Psd::Yes, Psd::No, Psd::Unknown])),
        testing in prop::option::of(any::<bool>()),
        unknown in prop::collection::btree_map("x[a-z0-9]{0,5}", "[!-:<-~]{0,8}", 0..3),
    ) -> DmarcRecord {
        DmarcRecord { policy, subdomain_policy, nonexistent_policy, adkim, aspf, failure_options, pct, report_format,
            report_interval, rua, ruf, psd, testing, unknown_tags: unknown.into_iter().collect() }
    }
}

fn list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z0-9*]{1,8}", 1..3)
}

prop_compose! {
    fn dkim_record()(
        version in prop::option::of(Just("DKIM1".to_string())),
        key_type in prop::option::of(prop::sample::select(vec!["rsa".to_string(), "ed25519".to_string()])),
        hash_algorithms in prop::option::of(list()),
        service_types in prop::option::of(list()),
        flags in prop::option::of(list()),
        notes in prop::option::of("[!-:<-~]{0,10}"),
        public_key in prop::option::of("[A-Za-z0-9+/]{0,40}={0,2}"),
        unknown in prop::collection::btree_map("x[a-z0-9]{0,5}", "[!-:<-~]{0,8}", 0..3),
    ) -> DkimKeyRecord {
        DkimKeyRecord { version, key_type, hash_algorithms, service_types, flags, notes, public_key,
            unknown_tags: unknown.into_iter().collect() }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn spf_round_trip(terms in prop::collection::vec(term(), 0..12)) {
        let record = SpfRecord { terms };
        let text = record.to_string();
        let parsed = SpfRecord::parse(&text);
        prop_assert!(!parsed.diagnostics.iter().any(|d| matches!(d.code, "spf-syntax" | "spf-unknown-mechanism" | "spf-invalid-ip" | "spf-invalid-domain-spec" | "spf-invalid-macro")), "{text}: {:?}", parsed.diagnostics);
        prop_assert_eq!(parsed.value, Some(record), "{}", text);
    }

    #[test]
    fn dmarc_round_trip(record in dmarc_record()) {
        let text = record.to_string();
        let parsed = DmarcRecord::parse(&text);
        prop_assert!(!parsed.has_errors(), "{text}: {:?}", parsed.diagnostics);
        prop_assert_eq!(parsed.value, Some(record), "{}", text);
    }

    #[test]
    fn dkim_round_trip(record in dkim_record()) {
        let text = record.to_string();
        let parsed = DkimKeyRecord::parse(&text);
        prop_assert_eq!(parsed.value, Some(record), "{}", text);
    }

    #[test]
    fn domain_round_trip(name in hostname()) {
        let d = DomainName::parse(&name).unwrap();
        prop_assert_eq!(DomainName::parse(&d.to_fqdn()).unwrap(), d.clone());
        prop_assert_eq!(DomainName::parse(&name.to_uppercase()).unwrap(), d);
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,80}") {
        let _ = SpfRecord::parse(&format!("v=spf1 {text}"));
        let _ = DmarcRecord::parse(&format!("v=DMARC1; {text}"));
        let _ = DkimKeyRecord::parse(&text);
        let _ = DomainName::parse(&text);
        let _ = ses_dmarc_records::auth_results::AuthenticationResults::parse(&text);
        let _ = ses_dmarc_records::auth_results::AuthenticationResults::parse_arc(&text);
        let _ = ses_dmarc_records::auth_results::ReceivedSpf::parse(&text);
    }
}
