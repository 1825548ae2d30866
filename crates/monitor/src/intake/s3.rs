//! One S3 prefix (where an SES receipt rule writes each received message, or where report
//! files are dropped): list it, take each object not taken before (key + ETag), ingest it,
//! record it, then copy it to `processed_prefix` and delete the original (or tag it).

use super::{IntakeOptions, ItemFailure, Progress, SourceOutcome, Verdict, ingest_message, record_failure};
use crate::config::S3Source;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::Database;

/// The tag put on objects taken when `tag_processed` is set.
pub const TAG: &str = "ses-dmarc";

fn aws_message<E, R>(what: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(_) => {
            let code = e.code().unwrap_or("an error");
            match e.message() {
                Some(m) => format!("{what}: {code}: {m}"),
                None => format!("{what}: {code}"),
            }
        }
        _ => format!("{what}: {}", DisplayErrorContext(e)),
    }
}

/// An object key inside a copy source (`bucket/key`), percent-encoded as S3 wants it.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a taken object goes under `processed_prefix`: its key relative to the prefix read.
fn processed_key(key: &str, prefix: &str, processed_prefix: &str) -> String {
    format!("{processed_prefix}{}", key.strip_prefix(prefix).unwrap_or(key))
}

/// Reads one prefix; never fails as a whole: what went wrong is in the outcome.
pub async fn poll(src: &S3Source, db: &Database, limits: &UnpackLimits, options: &IntakeOptions<'_>) -> SourceOutcome {
    let mut out = SourceOutcome {
        source: src.name.clone(),
        kind: "s3",
        location: format!("s3://{}/{}", src.bucket, src.prefix),
        ..Default::default()
    };
    let config = ses_dmarc_ses::aws::sdk_config(&src.region, src.endpoint_url.as_deref()).await;
    let mut builder = aws_sdk_s3::config::Builder::from(&config);
    if src.endpoint_url.is_some() {
        builder = builder.force_path_style(true);
    }
    let client = aws_sdk_s3::Client::from_conf(builder.build());
    if let Err(e) = read_prefix(src, db, limits, options, &client, &mut out).await {
        out.error = Some(e);
    }
    out
}

async fn read_prefix(
    src: &S3Source,
    db: &Database,
    limits: &UnpackLimits,
    options: &IntakeOptions<'_>,
    client: &aws_sdk_s3::Client,
    out: &mut SourceOutcome,
) -> Result<(), String> {
    let processed = src.processed_prefix.as_deref().filter(|p| !p.is_empty());
    let mut pages = client.list_objects_v2().bucket(&src.bucket).prefix(&src.prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_message(&format!("cannot list s3://{}/{}", src.bucket, src.prefix), &e))?;
        let objects: Vec<(String, String, u64)> = page
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?.to_string();
                Some((key, o.e_tag().unwrap_or_default().to_string(), o.size().unwrap_or(0).max(0) as u64))
            })
            // The processed prefix may lie under the prefix read; what is there was taken.
            .filter(|(key, _, _)| !processed.is_some_and(|p| key.starts_with(p)) && !key.ends_with('/'))
            .collect();
        (options.progress)(Progress::Found { source: src.name.clone(), count: objects.len() as u64 });
        for (key, etag, size) in objects {
            take(src, db, limits, options, client, out, &key, &etag, size).await?;
            (options.progress)(Progress::Taken { source: src.name.clone() });
        }
    }
    Ok(())
}

/// Takes one object: ingest unless this version was taken before, then move it on.
#[allow(clippy::too_many_arguments)]
async fn take(
    src: &S3Source,
    db: &Database,
    limits: &UnpackLimits,
    options: &IntakeOptions<'_>,
    client: &aws_sdk_s3::Client,
    out: &mut SourceOutcome,
    key: &str,
    etag: &str,
    size: u64,
) -> Result<(), String> {
    let (name, k, e) = (src.name.clone(), key.to_string(), etag.to_string());
    let before = db.run(move |s| s.object_outcome(&name, &k, &e)).await.map_err(|e| e.to_string())?;
    let outcome = match before {
        // Taken before; a crash (or a failed move) left it here: only the move is redone.
        Some(outcome) if src.processed_prefix.as_deref().is_some_and(|p| !p.is_empty()) => outcome,
        // Taken before and left in place on purpose (tagged, or not a report).
        Some(_) => return Ok(()),
        None => {
            let verdict = if size > limits.max_size {
                let reason = format!(
                    "{} MB, more than [intake] max_size_mb = {}: not read",
                    size / 1024 / 1024,
                    limits.max_size / 1024 / 1024
                );
                out.messages += 1;
                out.failed += 1;
                out.failures.push(ItemFailure { item: key.to_string(), reason: reason.clone() });
                Verdict::Failed(reason)
            } else {
                let object = client
                    .get_object()
                    .bucket(&src.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| aws_message(&format!("cannot read s3://{}/{key}", src.bucket), &e))?;
                let body = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("cannot read s3://{}/{key}: {e}", src.bucket))?
                    .into_bytes()
                    .to_vec();
                let origin = format!("s3://{}/{key}", src.bucket);
                let (verdict, ingested) = ingest_message(db, origin, body, limits).await;
                if let Verdict::DatabaseFailed(reason) = &verdict {
                    return Err(format!("the database failed, the rest is left for the next pass: {reason}"));
                }
                out.count(key, &verdict, &ingested);
                verdict
            };
            let outcome = match &verdict {
                Verdict::Stored { partial } => {
                    if let Some(reason) = partial {
                        record_failure(db, &src.name, key, &format!("stored in part: {reason}"), options.now).await;
                    }
                    "stored"
                }
                Verdict::NotAReport => "not-a-report",
                Verdict::Failed(reason) => {
                    record_failure(db, &src.name, key, reason, options.now).await;
                    "failed"
                }
                Verdict::DatabaseFailed(_) => unreachable!("returned above"),
            };
            let (name, k, e, now) = (src.name.clone(), key.to_string(), etag.to_string(), options.now);
            db.run(move |s| s.record_object(&name, &k, &e, outcome, now))
                .await
                .map_err(|e| format!("cannot record s3://{}/{key} as taken: {e}", src.bucket))?;
            outcome.to_string()
        }
    };
    if outcome != "stored" {
        return Ok(());
    }
    if let Some(processed) = src.processed_prefix.as_deref().filter(|p| !p.is_empty()) {
        let target = processed_key(key, &src.prefix, processed);
        client
            .copy_object()
            .bucket(&src.bucket)
            .copy_source(format!("{}/{}", src.bucket, encode_key(key)))
            .key(&target)
            .send()
            .await
            .map_err(|e| aws_message(&format!("cannot copy s3://{}/{key} to {target}", src.bucket), &e))?;
        client
            .delete_object()
            .bucket(&src.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_message(&format!("cannot delete s3://{}/{key} after copying it", src.bucket), &e))?;
        out.processed += 1;
    } else if src.tag_processed {
        let tag = aws_sdk_s3::types::Tag::builder().key(TAG).value("stored").build().map_err(|e| e.to_string())?;
        let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().map_err(|e| e.to_string())?;
        client
            .put_object_tagging()
            .bucket(&src.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| aws_message(&format!("cannot tag s3://{}/{key}", src.bucket), &e))?;
        out.processed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(encode_key("dmarc/a b+c.xml"), "dmarc/a%20b%2Bc.xml");
        assert_eq!(processed_key("dmarc/x", "dmarc/", "processed/"), "processed/x");
        assert_eq!(processed_key("dmarc/x", "", "done/"), "done/dmarc/x");
    }
}
