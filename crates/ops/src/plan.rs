//! `--from-ses` for `plan` and `apply`: the DKIM tokens, MAIL FROM name and signing zones
//! from the SES identity in each region.

use crate::OpsError;
use ses_dmarc_ses::PlanInput;

/// Completes `input` from SES. Regions that are Deterministic Easy DKIM replicas of
/// another listed region are left out of the plan (their records are the parent's); the
/// returned notes say so.
pub async fn complete_from_ses(input: &mut PlanInput, endpoint_url: Option<&str>) -> Result<Vec<String>, OpsError> {
    if !input.dkim_tokens.is_empty() {
        return Err(OpsError::Input("--from-ses takes the DKIM tokens from SES: leave out --dkim-token".into()));
    }
    let domain = crate::check::domain(&input.domain)?;
    let regions: Vec<String> = input.regions.iter().map(|r| crate::check::region(r)).collect::<Result<_, _>>()?;
    let mut kept = Vec::new();
    let mut notes = Vec::new();
    for (region, answer) in crate::ses_status::identity_statuses(&domain, &regions, endpoint_url).await {
        let status = answer?;
        if !status.exists {
            return Err(crate::ses_status::not_an_identity(&domain, &region));
        }
        if let Some(parent) =
            status.dkim.signing_attributes_origin.as_deref().and_then(ses_dmarc_ses::identity::deed_parent_region)
            && regions.iter().any(|r| r == parent)
        {
            notes.push(format!(
                "{region} is a Deterministic Easy DKIM replica of {parent}: its DKIM records are {parent}'s, planned once"
            ));
            continue;
        }
        if input.mail_from.is_none() {
            input.mail_from = status.mail_from.as_ref().map(|m| m.domain.clone());
        }
        if status.dkim.tokens.len() == 3 && !status.is_byodkim() {
            input.dkim_tokens.extend(status.dkim.tokens.iter().map(|t| format!("{region}:{t}")));
        }
        if let Some(zone) = status.signing_zone() {
            input.dkim_signing_zones.insert(region.clone(), zone);
        }
        kept.push(region);
    }
    input.regions = kept;
    Ok(notes)
}
