//! docs/findings.md, generated from the finding table and the parsers' diagnostic codes.

use crate::catalog::{FINDINGS, RecordGroup};
use ses_dmarc_records::DIAGNOSTIC_CODES;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The whole of docs/findings.md.
pub fn findings_markdown() -> String {
    let mut out = String::from(
        "# Finding codes\n\n\
         <!-- Generated from crates/audit/src/catalog.rs and crates/records/src/diag.rs.\n     \
         Do not edit: run `UPDATE_DOCS=1 cargo test -p ses-dmarc-audit docs` after changing the tables. -->\n\n\
         `ses-dmarc check` reports findings with these codes (`code` in `--format json`). Severities:\n\
         `error` (SES mail fails, or a record is ignored), `warning` (works, but risky or likely wrong),\n\
         `info` (worth knowing), `unknown` (a DNS answer needed for the check could not be had).\n\
         Codes are stable: scripts may match on them.\n",
    );
    for group in
        [RecordGroup::MailFrom, RecordGroup::Dkim, RecordGroup::Dmarc, RecordGroup::Spf, RecordGroup::AnyRecord]
    {
        out.push_str(&format!(
            "\n## {}\n\n| code | severity | what | why | fix |\n|---|---|---|---|---|\n",
            group.title()
        ));
        for f in FINDINGS.iter().filter(|f| f.group == group) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                f.code,
                f.severity.as_str(),
                cell(f.title),
                cell(f.why),
                cell(f.fix)
            ));
        }
    }
    out.push_str(
        "\n# Record diagnostic codes\n\n\
         The record parsers (`records` crate) report these codes, each with a byte span of the record.\n\
         `check` turns them into the findings above (for example every SPF syntax diagnostic into\n\
         `spf-syntax`) and shows the diagnostic code and message in the finding.\n\n\
         | code | severity | meaning |\n|---|---|---|\n",
    );
    for d in DIAGNOSTIC_CODES {
        out.push_str(&format!("| `{}` | {} | {} |\n", d.code, d.severity.as_str(), cell(d.summary)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn docs_findings_md_matches_the_tables() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/findings.md");
        let expected = findings_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/findings.md");
            return;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/findings.md is out of date with the code's tables: run `UPDATE_DOCS=1 cargo test -p ses-dmarc-audit docs` and commit"
        );
    }

    #[test]
    fn every_code_is_documented() {
        let md = findings_markdown();
        for f in FINDINGS {
            assert!(md.contains(&format!("`{}`", f.code)));
        }
        for d in DIAGNOSTIC_CODES {
            assert!(md.contains(&format!("`{}`", d.code)));
        }
    }
}
