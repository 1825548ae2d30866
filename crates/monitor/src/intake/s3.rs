//! One S3 prefix (where an SES receipt rule writes each received message, or where report
//! files are dropped): list it (or read the objects named by the event notifications of an
//! SQS queue), take each object not taken before (key + ETag), ingest it, record it, then
//! copy it to `processed_prefix` and delete the original (or tag it).

use super::{IntakeOptions, Progress, SourceOutcome, Verdict, ingest_message};
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
        location: match &src.queue_url {
            Some(q) => format!("s3://{}/{} (notified by {q})", src.bucket, src.prefix),
            None => format!("s3://{}/{}", src.bucket, src.prefix),
        },
        ..Default::default()
    };
    let config = ses_dmarc_ses::aws::sdk_config(&src.region, src.endpoint_url.as_deref()).await;
    let mut builder = aws_sdk_s3::config::Builder::from(&config);
    if src.endpoint_url.is_some() {
        builder = builder.force_path_style(true);
    }
    let reader = Reader { src, db, limits, options, client: aws_sdk_s3::Client::from_conf(builder.build()) };
    let read = match &src.queue_url {
        Some(queue) => reader.read_queue(&aws_sdk_sqs::Client::new(&config), queue, &mut out).await,
        None => reader.read_prefix(&mut out).await,
    };
    if let Err(e) = read {
        out.error = Some(e);
    }
    out
}

/// An object that a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notified {
    pub(crate) bucket: String,
    pub(crate) key: String,
}

/// The objects a queue message names: an S3 event notification (`Records[].s3`, its key
/// URL-encoded with `+` for spaces), the same wrapped by SNS (`Type: Notification`,
/// `Message`), or an SES receipt notification (`receipt.action` of type S3, via SNS).
/// `Ok(vec![])` for messages about nothing to read (`s3:TestEvent`, other event kinds);
/// `Err` for a body that is not such JSON.
pub(crate) fn notified_objects(body: &str) -> Result<Vec<Notified>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("a queue message that is not JSON ({e})"))?;
    if v.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
        let inner = v.get("Message").and_then(|m| m.as_str()).ok_or("an SNS notification without a Message")?;
        return notified_objects(inner);
    }
    if let Some(records) = v.get("Records").and_then(|r| r.as_array()) {
        let mut out = Vec::new();
        for r in records {
            let created = r.get("eventName").and_then(|e| e.as_str()).is_some_and(|e| e.starts_with("ObjectCreated"));
            let (Some(bucket), Some(key)) = (
                r.pointer("/s3/bucket/name").and_then(|b| b.as_str()),
                r.pointer("/s3/object/key").and_then(|k| k.as_str()),
            ) else {
                continue;
            };
            if created {
                out.push(Notified { bucket: bucket.to_string(), key: url_decode(key) });
            }
        }
        return Ok(out);
    }
    if let Some(action) = v.pointer("/receipt/action") {
        if action.get("type").and_then(|t| t.as_str()) == Some("S3") {
            let bucket =
                action.get("bucketName").and_then(|b| b.as_str()).ok_or("an SES notification without bucketName")?;
            let key =
                action.get("objectKey").and_then(|k| k.as_str()).ok_or("an SES notification without objectKey")?;
            return Ok(vec![Notified { bucket: bucket.to_string(), key: key.to_string() }]);
        }
        return Ok(vec![]);
    }
    if v.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(vec![]);
    }
    Err("a queue message that is neither an S3 event nor an SES notification".into())
}

/// An S3 event key: `+` is a space, `%XX` a byte.
fn url_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What every step of one source's pass reads from.
struct Reader<'a> {
    src: &'a S3Source,
    db: &'a Database,
    limits: &'a UnpackLimits,
    options: &'a IntakeOptions<'a>,
    client: aws_sdk_s3::Client,
}

impl Reader<'_> {
    /// `processed_prefix`, unless empty.
    fn processed_prefix(&self) -> Option<&str> {
        self.src.processed_prefix.as_deref().filter(|p| !p.is_empty())
    }

    /// Whether the key lies under the processed prefix (which may be under the prefix
    /// read): what is there was taken.
    fn is_processed(&self, key: &str) -> bool {
        self.processed_prefix().is_some_and(|p| key.starts_with(p))
    }

    /// Reads the queue until it is empty: each message's objects are taken (the same
    /// checkpoint as listing), and the message is deleted from the queue only after that.
    async fn read_queue(&self, sqs: &aws_sdk_sqs::Client, queue: &str, out: &mut SourceOutcome) -> Result<(), String> {
        let Reader { src, db, options, client, .. } = self;
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| aws_message(&format!("cannot read the queue {queue}"), &e))?;
            let messages = received.messages();
            if messages.is_empty() {
                return Ok(());
            }
            (options.progress)(Progress::Found { source: src.name.clone(), count: messages.len() as u64 });
            for m in messages {
                let body = m.body().unwrap_or_default();
                match notified_objects(body) {
                    Ok(objects) => {
                        for o in objects {
                            if o.bucket != src.bucket || !o.key.starts_with(&src.prefix) || self.is_processed(&o.key) {
                                continue;
                            }
                            // The size (for the limit) and the ETag of the object as it is now.
                            let (etag, size) = match client.head_object().bucket(&src.bucket).key(&o.key).send().await {
                                Ok(h) => (
                                    h.e_tag().unwrap_or_default().to_string(),
                                    h.content_length().unwrap_or(0).max(0) as u64,
                                ),
                                // Gone already (taken by an earlier pass and moved): nothing to read.
                                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => continue,
                                Err(e) => {
                                    return Err(aws_message(&format!("cannot read s3://{}/{}", src.bucket, o.key), &e));
                                }
                            };
                            match self.take(out, &o.key, &etag, size).await {
                                Ok(()) => {}
                                // The object named is gone: a notification repeated after it was moved.
                                Err(e) if e.contains("NoSuchKey") => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Err(reason) => {
                        let item = format!("queue message {}", m.message_id().unwrap_or("?"));
                        out.note_failure(db, &item, reason, options.now).await;
                    }
                }
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| aws_message(&format!("cannot delete a message from the queue {queue}"), &e))?;
                }
                (options.progress)(Progress::Taken { source: src.name.clone() });
            }
        }
    }

    /// Lists the prefix and takes each object.
    async fn read_prefix(&self, out: &mut SourceOutcome) -> Result<(), String> {
        let Reader { src, options, client, .. } = self;
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
                .filter(|(key, _, _)| !self.is_processed(key) && !key.ends_with('/'))
                .collect();
            (options.progress)(Progress::Found { source: src.name.clone(), count: objects.len() as u64 });
            for (key, etag, size) in objects {
                self.take(out, &key, &etag, size).await?;
                (options.progress)(Progress::Taken { source: src.name.clone() });
            }
        }
        Ok(())
    }

    /// Takes one object: ingest unless this version was taken before, then move it on.
    async fn take(&self, out: &mut SourceOutcome, key: &str, etag: &str, size: u64) -> Result<(), String> {
        let Reader { src, db, limits, options, client } = self;
        let limits = *limits;
        let (name, k, e) = (src.name.clone(), key.to_string(), etag.to_string());
        let before = db.run(move |s| s.object_outcome(&name, &k, &e)).await.map_err(|e| e.to_string())?;
        let outcome = match before {
            // Taken before; a crash (or a failed move) left it here: only the move is redone.
            Some(outcome) if self.processed_prefix().is_some() => outcome,
            // Taken before and left in place on purpose (tagged, or not a report).
            Some(_) => return Ok(()),
            None => {
                let verdict = if size > limits.max_size {
                    Verdict::Failed(out.too_large(db, key, size, limits, options.now).await)
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
                    out.tally(db, key, &verdict, &ingested, options.now).await?;
                    verdict
                };
                let outcome = match verdict {
                    Verdict::Stored { .. } => "stored",
                    Verdict::NotAReport => "not-a-report",
                    Verdict::Failed(_) | Verdict::DatabaseFailed(_) => "failed",
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
        if let Some(processed) = self.processed_prefix() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications() {
        let s3 = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"dmarc/a+b%21.eml","eTag":"abc"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"dmarc/x"}}}]}"#;
        let want = Notified { bucket: "b".into(), key: "dmarc/a b!.eml".into() };
        assert_eq!(notified_objects(s3).unwrap(), vec![want.clone()]);
        let sns = serde_json::json!({"Type": "Notification", "Message": s3}).to_string();
        assert_eq!(notified_objects(&sns).unwrap(), vec![want]);
        let ses = r#"{"notificationType":"Received","receipt":{"action":{"type":"S3","bucketName":"b","objectKey":"dmarc/m1"}}}"#;
        let ses = serde_json::json!({"Type": "Notification", "Message": ses}).to_string();
        assert_eq!(notified_objects(&ses).unwrap()[0].key, "dmarc/m1");
        assert!(notified_objects(r#"{"Event":"s3:TestEvent","Bucket":"b"}"#).unwrap().is_empty());
        assert!(notified_objects("not json").unwrap_err().contains("not JSON"));
        assert!(notified_objects("{}").is_err());
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("%E2%9C%93"), "✓");
    }

    #[test]
    fn keys() {
        assert_eq!(encode_key("dmarc/a b+c.xml"), "dmarc/a%20b%2Bc.xml");
        assert_eq!(processed_key("dmarc/x", "dmarc/", "processed/"), "processed/x");
        assert_eq!(processed_key("dmarc/x", "", "done/"), "done/dmarc/x");
    }
}
