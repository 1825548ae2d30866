//! TXT record values as DNS carries them: character-strings of at most 255 bytes, and the
//! quoted presentation form zone files and Route 53 use.

/// Longest character-string DNS can carry.
pub const MAX_STRING: usize = 255;

/// Splits a value into character-strings of at most 255 bytes, never inside a UTF-8
/// sequence.
pub fn split_strings(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    while rest.len() > MAX_STRING {
        let mut cut = MAX_STRING;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest);
    }
    out
}

/// One character-string in presentation form: quoted, `"` and `\` escaped, bytes outside
/// printable ASCII as `\DDD`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// A TXT value as zone-file / Route 53 record data: its 255-byte strings, each quoted,
/// separated by spaces.
pub fn presentation(value: &str) -> String {
    split_strings(value).iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
}

/// Reads presentation form back into the value (strings concatenated). `None` when the
/// quoting is malformed.
pub fn parse_presentation(text: &str) -> Option<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                i += 1;
                loop {
                    match *bytes.get(i)? {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let next = *bytes.get(i + 1)?;
                            if next.is_ascii_digit() {
                                let digits = text.get(i + 1..i + 4)?;
                                out.push(digits.parse::<u8>().ok()?);
                                i += 4;
                            } else {
                                out.push(next);
                                i += 2;
                            }
                        }
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_255() {
        let v = "x".repeat(600);
        let parts = split_strings(&v);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![255, 255, 90]);
        assert_eq!(split_strings(""), vec![""]);
        let multibyte = "é".repeat(200);
        assert!(split_strings(&multibyte).iter().all(|p| p.len() <= 255));
    }

    #[test]
    fn quoting_round_trips() {
        for v in ["v=spf1 -all", "a \"quoted\" \\ value", &"k".repeat(700), "naïve"] {
            let p = presentation(v);
            assert_eq!(parse_presentation(&p).as_deref(), Some(v), "{p}");
        }
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(parse_presentation("\"unterminated"), None);
    }
}
