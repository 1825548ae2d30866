//! `spf`: a domain's whole include tree with its lookup counts, and, given a client, the
//! result a receiver computes and the path to it.

use serde::Serialize;
use ses_dmarc_dns::Resolver;
use ses_dmarc_receiver::spf::{SpfCheck, SpfInput, check_mail_from};
use ses_dmarc_receiver::spf_tree::{SpfTree, gather_tree};

/// The tree, its verdict, and the evaluation for one client if one was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct SpfReport {
    /// The domain whose record it is.
    pub domain: String,
    /// DNS-querying terms over the whole tree.
    pub lookups: usize,
    /// Void lookups over the whole tree.
    pub void_lookups: usize,
    /// Whether receivers return permerror for this record, whatever the client.
    pub permerror: bool,
    /// The tree.
    pub tree: SpfTree,
    /// The evaluation for the client given.
    pub check: Option<SpfCheck>,
}

impl SpfReport {
    /// Whether some answer could not be had.
    pub fn has_unknown(&self) -> bool {
        !self.tree.failed.is_empty()
    }
}

/// Builds the tree of `domain` and, with `client`, evaluates it as a receiver would.
pub async fn spf_report<R: Resolver>(resolver: &R, domain: &str, client: Option<SpfInput>) -> SpfReport {
    let (tree, _) = gather_tree(resolver, domain).await;
    let check = match client {
        Some(input) => Some(check_mail_from(resolver, &input).await),
        None => None,
    };
    SpfReport {
        domain: domain.to_string(),
        lookups: tree.lookups,
        void_lookups: tree.void_lookups,
        permerror: tree.permerror(),
        tree,
        check,
    }
}
