//! DKIM verification of every signature of a message, with mail-auth doing the
//! cryptography and our own resolver fetching the keys (so keys come from the same
//! nameservers as everything else, and a DNS failure stays a temperror).

use mail_auth::common::cache::NoCache;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, DnsError, Error, MessageAuthenticator, ResolverCache, Txt};
use serde::Serialize;
use ses_dmarc_dns::{Outcome, RecordType, Resolver};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Key records fetched ahead of verification, handed to mail-auth as its TXT cache.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for KeyCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key, value);
    }
}

/// One DKIM-Signature's verification, as a receiver does it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimCheck {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    /// The selector (`s=`): the key is at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// `pass`, `fail`, `neutral`, `temperror`, `permerror`, `none`.
    pub result: String,
    /// Why the signature did not pass, when it did not.
    pub reason: Option<String>,
    /// The signing algorithm (`a=`), lower case (`rsasha256`, `ed25519sha256`).
    pub algorithm: String,
    /// `l=`: the number of body bytes signed, when the signature limits it.
    pub body_length: Option<u64>,
    /// `x=`: expiry, seconds since 1970.
    pub expires: Option<u64>,
    /// The key record's flags say the domain is testing DKIM (`t=y`).
    pub key_testing: bool,
}

impl DkimCheck {
    pub(crate) fn passed(&self) -> bool {
        self.result == "pass"
    }
}

fn result_parts(r: &DkimResult) -> (&'static str, Option<String>) {
    match r {
        DkimResult::Pass => ("pass", None),
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    }
}

/// Signatures verified per message at most; a message with more is said to have them
/// skipped (receivers stop early too).
pub const MAX_SIGNATURES: usize = 10;

/// How long the key lookups of one message may take in all; keys not had by then count
/// as DNS failures (temperror).
pub const KEYS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Verifies every DKIM-Signature of `message` (the caller caps them at [`MAX_SIGNATURES`]).
/// A signature whose `h=` leaves out From fails, as RFC 6376 §5.4 requires (From MUST be
/// signed).
pub async fn verify_dkim<R: Resolver>(resolver: &R, message: &AuthenticatedMessage<'_>) -> Vec<DkimCheck> {
    let cache = KeyCache::default();
    let far = Instant::now() + std::time::Duration::from_secs(3600);
    let mut names: Vec<String> = message
        .dkim_headers
        .iter()
        .map(|h| format!("{}._domainkey.{}", h.header.s, h.header.d).to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let lookups = futures::future::join_all(names.iter().map(|n| resolver.lookup(n, RecordType::Txt)));
    let answers = match tokio::time::timeout(KEYS_DEADLINE, lookups).await {
        Ok(answers) => answers,
        Err(_) => names
            .iter()
            .map(|_| ses_dmarc_dns::Answer {
                outcome: Outcome::Failed(ses_dmarc_dns::Failure::Timeout),
                cname_chain: vec![],
            })
            .collect(),
    };
    let mut testing_keys = std::collections::HashSet::new();
    for (name, answer) in names.iter().zip(answers) {
        let txt = match answer.outcome {
            Outcome::Records(records) => {
                let texts: Vec<Vec<u8>> = records
                    .iter()
                    .filter_map(|r| match r {
                        ses_dmarc_dns::Rdata::Txt(s) => Some(s.concat()),
                        _ => None,
                    })
                    .collect();
                let key = texts.iter().find(|t| t.windows(2).any(|w| w == b"p=")).or(texts.first());
                let flags =
                    key.and_then(|k| ses_dmarc_records::DkimKeyRecord::parse(&String::from_utf8_lossy(k)).value);
                if flags.and_then(|r| r.flags).is_some_and(|f| f.iter().any(|x| x == "y")) {
                    testing_keys.insert(name.clone());
                }
                match key.map(|k| DomainKey::parse(k)) {
                    Some(Ok(dk)) => Txt::DomainKey(std::sync::Arc::new(dk)),
                    Some(Err(e)) => Txt::Error(e),
                    None => Txt::Error(Error::Dns(DnsError::RecordNotFound(hickory_proto::op::ResponseCode::NoError))),
                }
            }
            Outcome::NoData => {
                Txt::Error(Error::Dns(DnsError::RecordNotFound(hickory_proto::op::ResponseCode::NoError)))
            }
            Outcome::NxDomain => {
                Txt::Error(Error::Dns(DnsError::RecordNotFound(hickory_proto::op::ResponseCode::NXDomain)))
            }
            Outcome::Failed(f) => Txt::Error(Error::Dns(DnsError::Resolver(f.to_string()))),
        };
        cache.insert(format!("{name}.").into_boxed_str(), txt.clone(), far);
        cache.insert(name.clone().into_boxed_str(), txt, far);
    }
    // Every key is in the cache; the authenticator's own resolver is never asked.
    let Ok(authenticator) = MessageAuthenticator::new(
        mail_auth::hickory_resolver::config::ResolverConfig::from_name_servers(vec![]),
        Default::default(),
    ) else {
        return Vec::new();
    };
    let params =
        mail_auth::Parameters::<_, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>>::new(
            message,
        )
        .with_txt_cache(&cache);
    authenticator
        .verify_dkim(params)
        .await
        .iter()
        .map(|out| {
            let (mut result, mut reason) = result_parts(out.result());
            let sig = out.signature();
            if let Some(s) = sig
                && !s.h.iter().any(|h| h.eq_ignore_ascii_case("from"))
                && result != "none"
            {
                result = "fail";
                reason = Some(
                    "the signature does not cover the From header (h= leaves it out): RFC 6376 §5.4 says From MUST be signed, so verifiers treat it as failing".into(),
                );
            }
            DkimCheck {
                domain: sig.map(|s| s.d.to_ascii_lowercase()).unwrap_or_default(),
                selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
                result: result.to_string(),
                reason,
                algorithm: sig.map(|s| format!("{:?}", s.a).to_ascii_lowercase()).unwrap_or_default(),
                body_length: sig.and_then(|s| (s.l > 0).then_some(s.l)),
                expires: sig.and_then(|s| (s.x > 0).then_some(s.x)),
                key_testing: sig.is_some_and(|s| {
                    testing_keys.contains(&format!("{}._domainkey.{}", s.s, s.d).to_ascii_lowercase())
                }),
            }
        })
        .collect()
}
