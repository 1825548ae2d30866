//! An offline table of IP ranges and the autonomous systems (network owners) that announce
//! them, read from the CSV files of the npm package `@ip-location-db/asn` (and others of
//! the same shape): one range a line, `ip_range_start,ip_range_end,asn,name`, IPv4 and
//! IPv6, addresses written as text or as numbers, names quoted when they hold a comma.
//! Pure: it reads what it is given; nothing is ever asked of an online service.

use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest line read (a real table's lines are under 200 bytes).
pub const MAX_LINE: usize = 4096;

/// An address's network owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsnEntry<'a> {
    /// The autonomous system number.
    pub asn: u32,
    /// Its name as the table gives it (`GOOGLE`, `MICROSOFT-CORP-MSN-AS-BLOCK`); may be empty.
    pub name: &'a str,
}

/// A table that could not be read, with the file and line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsnError {
    /// A line that is not a range.
    #[error("{file} line {line}: {reason} (expected ip_range_start,ip_range_end,asn,name as in @ip-location-db/asn)")]
    Line {
        /// The file, as the user named it.
        file: String,
        /// The line number, from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read.
    #[error("{file}: cannot read the ASN table: {reason}")]
    Read {
        /// The file, as the user named it.
        file: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Range<T> {
    start: T,
    end: T,
    asn: u32,
    name: u32,
}

/// IP ranges with their autonomous systems, looked up by address.
#[derive(Debug, Default, Clone)]
pub struct AsnTable {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    names: Vec<String>,
    name_index: std::collections::HashMap<String, u32>,
    sorted: bool,
}

/// One field of a CSV line: quoted (`"a, b"`, `""` for a quote) or not.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("`{c}` after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// An address as the table writes it: text (`1.0.0.0`, `2001:200::`) or a number.
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let n: u128 = text.parse().ok()?;
    Some(match u32::try_from(n) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => IpAddr::V6(Ipv6Addr::from(n)),
    })
}

impl AsnTable {
    /// An empty table.
    pub fn new() -> Self {
        AsnTable::default()
    }

    /// Ranges in the table.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table holds no range.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.name_index.get(name) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.name_index.insert(name.to_string(), i);
        i
    }

    /// Adds one line (`number` from 1, for the error); blank lines, `#` comments and a
    /// header line are skipped.
    fn add_line(&mut self, text: &str, number: u64, file: &str) -> Result<(), AsnError> {
        let bad = |reason: String| AsnError::Line { file: file.to_string(), line: number, reason };
        let line = text.trim_end_matches(['\r', '\n']).trim_start_matches('\u{feff}');
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let mut fields = split_csv(line).map_err(bad)?;
        if fields.len() < 3 {
            return Err(bad(format!(
                "{} field{} where 3 or 4 are needed",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            )));
        }
        // A header (`ip_range_start,ip_range_end,...`) on the first line.
        if number == 1
            && address(&fields[0]).is_none()
            && fields[0].chars().all(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return Ok(());
        }
        // An organization name with commas that nobody quoted: the rest of the line.
        let name =
            if fields.len() > 4 { fields.split_off(3).join(",") } else { fields.get(3).cloned().unwrap_or_default() };
        let start = address(&fields[0]).ok_or_else(|| bad(format!("`{}` is not an IP address", fields[0].trim())))?;
        let end = address(&fields[1]).ok_or_else(|| bad(format!("`{}` is not an IP address", fields[1].trim())))?;
        let asn_text = fields[2].trim();
        let digits = asn_text.strip_prefix("AS").or_else(|| asn_text.strip_prefix("as")).unwrap_or(asn_text);
        let asn: u32 = digits.parse().map_err(|_| bad(format!("`{asn_text}` is not an AS number")))?;
        let name = self.intern(name.trim());
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if u32::from(s) <= u32::from(e) => {
                self.v4.push(Range { start: s.into(), end: e.into(), asn, name })
            }
            (IpAddr::V6(s), IpAddr::V6(e)) if u128::from(s) <= u128::from(e) => {
                self.v6.push(Range { start: s.into(), end: e.into(), asn, name })
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                return Err(bad(format!("the range ends ({end}) before it starts ({start})")));
            }
            _ => return Err(bad(format!("the range mixes IPv4 and IPv6 ({start} to {end})"))),
        }
        self.sorted = false;
        Ok(())
    }

    /// Reads a table (plain CSV, or gzip-compressed CSV) from `reader`, adding its ranges;
    /// `file` names it in errors. Returns the ranges added. A line that is not a range
    /// refuses the whole table, naming the line.
    pub fn read_csv(&mut self, reader: impl Read, file: &str) -> Result<usize, AsnError> {
        let mut reader = std::io::BufReader::new(reader);
        let gzip = reader.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
        if gzip {
            let inflated = std::io::BufReader::new(flate2::bufread::MultiGzDecoder::new(reader));
            self.read_lines(inflated, file)
        } else {
            self.read_lines(reader, file)
        }
    }

    fn read_lines(&mut self, mut reader: impl BufRead, file: &str) -> Result<usize, AsnError> {
        let before = self.len();
        let mut buf = Vec::new();
        let mut number = 0u64;
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| AsnError::Read { file: file.to_string(), reason: e.to_string() })?;
            if read == 0 {
                break;
            }
            number += 1;
            if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
                return Err(AsnError::Line {
                    file: file.to_string(),
                    line: number,
                    reason: format!("longer than {MAX_LINE} bytes (is this a CSV file?)"),
                });
            }
            self.add_line(&String::from_utf8_lossy(&buf), number, file)?;
        }
        self.finish();
        Ok(self.len() - before)
    }

    /// Sorts the ranges for lookups (done by [`AsnTable::read_csv`]).
    fn finish(&mut self) {
        if !self.sorted {
            self.v4.sort_by_key(|r| (r.start, r.end));
            self.v6.sort_by_key(|r| (r.start, r.end));
            self.sorted = true;
        }
    }

    /// The autonomous system announcing `ip`, if the table has one (AS 0, "not routed",
    /// is none). Where ranges overlap, the one starting last among those holding `ip` wins.
    pub fn lookup(&self, ip: IpAddr) -> Option<AsnEntry<'_>> {
        fn find<T: Ord + Copy>(ranges: &[Range<T>], ip: T) -> Option<&Range<T>> {
            let upto = ranges.partition_point(|r| r.start <= ip);
            ranges[..upto].iter().rev().take(8).find(|r| r.end >= ip)
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let r = match ip {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4)).map(|r| (r.asn, r.name)),
            IpAddr::V6(v6) => find(&self.v6, u128::from(v6)).map(|r| (r.asn, r.name)),
        }?;
        (r.0 != 0).then(|| AsnEntry { asn: r.0, name: self.names.get(r.1 as usize).map(String::as_str).unwrap_or("") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<AsnTable, AsnError> {
        let mut t = AsnTable::new();
        t.read_csv(text.as_bytes(), "t.csv")?;
        Ok(t)
    }

    #[test]
    fn ranges_of_both_families_as_text_or_numbers() {
        let t = table(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             8.8.8.0,8.8.8.255,AS15169,GOOGLE\r\n\
             # a comment\n\n\
             16909060,16909319,9999,EXAMPLE-ISP\n\
             2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,GOOGLE\n\
             9.9.9.0,9.9.9.255,19281,Quad9, Foundation, really\n\
             10.0.0.0,10.255.255.255,0,Not routed\n",
        )
        .unwrap();
        assert_eq!(t.len(), 6);
        let at = |ip: &str| t.lookup(ip.parse().unwrap()).map(|e| (e.asn, e.name.to_string()));
        assert_eq!(at("1.0.0.7"), Some((13335, "Cloudflare, Inc.".into())));
        assert_eq!(at("8.8.8.8"), Some((15169, "GOOGLE".into())));
        assert_eq!(at("1.2.3.4"), Some((9999, "EXAMPLE-ISP".into())));
        assert_eq!(at("1.2.4.7"), Some((9999, "EXAMPLE-ISP".into())));
        assert_eq!(at("1.2.4.8"), None);
        assert_eq!(at("2001:4860:4860::8888"), Some((15169, "GOOGLE".into())));
        assert_eq!(at("::ffff:8.8.8.8"), Some((15169, "GOOGLE".into())), "IPv4-mapped");
        assert_eq!(at("9.9.9.9"), Some((19281, "Quad9, Foundation, really".into())));
        assert_eq!(at("10.1.2.3"), None, "AS 0 is no owner");
        assert_eq!(at("0.0.0.1"), None);
        assert_eq!(at("255.255.255.255"), None);
        // A header line is skipped.
        assert_eq!(table("ip_range_start,ip_range_end,asn,name\n1.0.0.0,1.0.0.255,1,A\n").unwrap().len(), 1);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, reason) in [
            ("1.0.0.0,1.0.0.255,1,A\n1.0.1.0,1.0.1.255\n", 2, "2 fields"),
            ("1.0.0.0,1.0.0.255,1,A\nx,1.0.1.255,1,B\n", 2, "`x` is not an IP address"),
            ("1.0.0.0,1.0.0.255,one,A\n", 1, "`one` is not an AS number"),
            ("1.0.1.0,1.0.0.255,1,A\n", 1, "ends (1.0.0.255) before it starts"),
            ("1.0.0.0,2001::,1,A\n", 1, "mixes IPv4 and IPv6"),
            ("1.0.0.0,1.0.0.255,1,\"A\n", 1, "not closed"),
            ("1.0.0.0,1.0.0.255,1,\"A\"B\n", 1, "after a closing quote"),
        ] {
            let e = table(text).unwrap_err();
            let AsnError::Line { line: l, .. } = &e else { panic!("{e}") };
            assert_eq!(*l, line, "{text:?}: {e}");
            assert!(e.to_string().contains(reason), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("t.csv line {line}: ")), "{e}");
        }
        let long = format!("1.0.0.0,1.0.0.255,1,{}\n", "A".repeat(MAX_LINE * 2));
        assert!(table(&long).unwrap_err().to_string().contains("longer than 4096 bytes"));
        assert!(table("\u{0}\u{1}binary").is_err());
    }

    #[test]
    fn gzip_tables_are_read() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"8.8.8.0,8.8.8.255,15169,GOOGLE\n").unwrap();
        let mut t = AsnTable::new();
        assert_eq!(t.read_csv(&e.finish().unwrap()[..], "t.csv.gz").unwrap(), 1);
        assert_eq!(t.lookup("8.8.8.8".parse().unwrap()).map(|e| e.asn), Some(15169));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_read_or_refuse_without_panicking(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut t = AsnTable::new();
            if t.read_csv(&data[..], "p.csv").is_ok() {
                let _ = t.lookup("192.0.2.1".parse().unwrap());
            }
        }

        #[test]
        fn lines_of_table_fragments_read_or_refuse(parts in proptest::collection::vec(
            proptest::sample::select(vec!["1.0.0.0", "1.0.0.255", "2001:db8::", "::", "4294967296", "15169", "AS1", "\"a, b\"", "\"", "", ",", "\n", "\r\n", "#", "x"]),
            0..40,
        )) {
            let text: String = parts.concat();
            let mut t = AsnTable::new();
            match t.read_csv(text.as_bytes(), "p.csv") {
                Ok(n) => proptest::prop_assert_eq!(n, t.len()),
                Err(AsnError::Line { line, .. }) => proptest::prop_assert!(line >= 1),
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }
}
