//! Parses a million SPF and DMARC records (half each), of the shapes found in the wild.
//! Run: cargo bench -p ses-dmarc-records --bench parse

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ses_dmarc_records::{DkimKeyRecord, DmarcRecord, SpfRecord};
use std::hint::black_box;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn spf_records(count: usize) -> Vec<String> {
    let includes = [
        "_spf.google.com",
        "spf.protection.outlook.com",
        "amazonses.com",
        "sendgrid.net",
        "mailgun.org",
        "servers.mcsv.net",
        "_spf.salesforce.com",
        "mail.zendesk.com",
        "spf.mtasv.net",
    ];
    let alls = ["~all", "-all", "?all"];
    let mut rng = Lcg(7);
    (0..count)
        .map(|i| {
            let mut s = String::from("v=spf1");
            if rng.next(3) == 0 {
                s.push_str(" mx a:mail.example.com");
            }
            for _ in 0..1 + rng.next(4) {
                s.push_str(" include:");
                s.push_str(includes[rng.next(includes.len())]);
            }
            if rng.next(2) == 0 {
                s.push_str(&format!(" ip4:192.0.{}.0/24 ip6:2001:db8:{:x}::/48", i % 256, i % 65536));
            }
            if rng.next(10) == 0 {
                s.push_str(" exists:%{i}._spf.%{d}");
            }
            s.push(' ');
            s.push_str(alls[rng.next(alls.len())]);
            s
        })
        .collect()
}

fn dmarc_records(count: usize) -> Vec<String> {
    let policies = ["none", "quarantine", "reject"];
    let mut rng = Lcg(11);
    (0..count)
        .map(|i| {
            let mut s = format!("v=DMARC1; p={}", policies[rng.next(3)]);
            if rng.next(2) == 0 {
                s.push_str(&format!("; sp={}", policies[rng.next(3)]));
            }
            s.push_str(&format!("; rua=mailto:dmarc{i}@example.com"));
            if rng.next(3) == 0 {
                s.push_str(",mailto:reports@vendor.example.net!10m");
            }
            if rng.next(4) == 0 {
                s.push_str("; ruf=mailto:forensic@example.com; fo=1");
            }
            if rng.next(4) == 0 {
                s.push_str("; adkim=s; aspf=r; pct=100");
            }
            s
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const MILLION: usize = 1_000_000;
    let spf = spf_records(MILLION / 2);
    let dmarc = dmarc_records(MILLION / 2);
    let mut group = c.benchmark_group("records");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MILLION as u64));
    group.bench_function(BenchmarkId::new("spf+dmarc", MILLION), |b| {
        b.iter(|| {
            let mut errors = 0usize;
            for r in &spf {
                errors += usize::from(SpfRecord::parse(black_box(r)).has_errors());
            }
            for r in &dmarc {
                errors += usize::from(DmarcRecord::parse(black_box(r)).has_errors());
            }
            assert_eq!(errors, 0);
            errors
        })
    });
    group.throughput(Throughput::Elements((MILLION / 2) as u64));
    group.bench_function(BenchmarkId::new("spf", MILLION / 2), |b| {
        b.iter(|| spf.iter().filter(|r| SpfRecord::parse(black_box(r)).value.is_some()).count())
    });
    group.bench_function(BenchmarkId::new("dmarc", MILLION / 2), |b| {
        b.iter(|| dmarc.iter().filter(|r| DmarcRecord::parse(black_box(r)).value.is_some()).count())
    });
    group.finish();
    let key = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwT3pjYk3yZ7UT5Ey1UZzUJf0p3x2zDkWJ3y+ZqMdEsJ0m6Zl3pYhF8Zr7bVg6EwC2F0KfB9eC2wqz9Y1JdZ7Yp8zmO0b3G0bU7sF3y9q1kC1YgW4V0j1vO2h2yK9XbP1n6yH7dM5yXo6fL5mT7bQ2xE0sH3nJ4kG8aR2wF1cZ9vD6tB3uN0pK5lM7oQ8iS4rU2eW9yA1xC6gT3jL5hV0bN7mE8dF2kO4qP9sR1tY6uI3wZ5aX0cB7vE2nM8lK4jH9gD1fS6rT3yU0iO5pQ7wA2sZ4xC8vB1nM6kL3jH0gF9dS5aQ2wE7rT4yU1iO8pZ3xC6vB0nM9lK2jH5gF8dS1aQ4wE3rT6yU7iO0pZ9xCwIDAQAB";
    c.bench_function("dkim-key", |b| b.iter(|| DkimKeyRecord::parse(black_box(key)).value.is_some()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
