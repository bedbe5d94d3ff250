//! Phone number normalisation: digits only, country code stripped, shape checked.
use crate::CoreError;

/// Normalises a Chinese phone number to digits only, with the country code (`+86`, `0086`, `86`) stripped.
///
/// Accepts spaces, dashes, dots and brackets as separators. A mobile number must be 11 digits starting with
/// `1[3-9]`; a landline starts with `0` and has 10 to 12 digits (area code plus number). Anything else is an
/// error that names the field `phone` and never the number.
pub fn normalize_phone(raw: &str) -> Result<String, CoreError> {
    let mut digits = String::with_capacity(raw.len());
    let mut plus = false;
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '\u{3000}' => {}
            // Full-width digits, as typed on Chinese keyboards.
            '０'..='９' => {
                let d = (c as u32 - '０' as u32) as u8;
                digits.push((b'0' + d) as char);
            }
            _ => {
                return Err(CoreError::invalid(
                    "phone",
                    "may hold only digits and separators",
                ))
            }
        }
        if digits.len() > 20 {
            return Err(CoreError::invalid("phone", "is too long"));
        }
    }
    // An international form (`+…` or `00…`) must be China's (86); what follows is the national number, a
    // landline's trunk `0` put back when it was left out (`+86 571 …` is `0571 …`).
    let international = if plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    let national = match international {
        Some(intl) => {
            let Some(rest) = intl.strip_prefix("86") else {
                return Err(CoreError::invalid(
                    "phone",
                    "must be a Chinese number (+86); other countries are not served",
                ));
            };
            if rest.starts_with('1') || rest.starts_with('0') {
                rest.to_owned()
            } else {
                format!("0{rest}")
            }
        }
        None if digits.len() == 13 && digits.starts_with("861") => digits[2..].to_owned(),
        None => digits,
    };
    // A landline's area code starts with 0 and a non-zero digit: `00` begins an international number, never
    // a Chinese one. So the normal form never starts with a prefix its own normalisation would strip.
    let ok = match national.as_bytes() {
        [b'1', second, ..] => national.len() == 11 && (b'3'..=b'9').contains(second),
        [b'0', second, ..] => *second != b'0' && (10..=12).contains(&national.len()),
        _ => false,
    };
    if ok {
        Ok(national)
    } else {
        Err(CoreError::invalid(
            "phone",
            "must be an 11-digit mobile number or a landline with area code",
        ))
    }
}

/// Whether `s` may hold a Chinese mobile number: eleven digits in a row, `1` then `3`-`9`, separators between
/// them (space, `-`, `.`, `_`, brackets) ignored. Free text and identifiers that reach the audit log or a stored
/// record in the clear (tickets, account ids, reasons) are refused when it holds, so no one can put a customer's
/// number where it would be kept unencrypted.
pub fn may_hold_phone(s: &str) -> bool {
    let mut run: Vec<u8> = Vec::new();
    let check = |run: &[u8]| {
        run.windows(11)
            .any(|w| w[0] == b'1' && (b'3'..=b'9').contains(&w[1]))
    };
    for c in s.chars() {
        match c {
            '0'..='9' => run.push(c as u8),
            '０'..='９' => run.push(b'0' + (c as u32 - '０' as u32) as u8),
            ' ' | '-' | '.' | '_' | '(' | ')' | '\u{3000}' | '+' => {}
            _ => {
                if check(&run) {
                    return true;
                }
                run.clear();
            }
        }
    }
    check(&run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_country_code_and_separators() {
        for raw in [
            "13800138000",
            "+86 138 0013 8000",
            "0086-138-0013-8000",
            "86 13800138000",
            "138-0013-8000",
        ] {
            assert_eq!(normalize_phone(raw).as_deref(), Ok("13800138000"), "{raw}");
        }
        assert_eq!(
            normalize_phone("０５７１-８７６５４３２１").as_deref(),
            Ok("057187654321")
        );
        assert_eq!(
            normalize_phone("(010) 1234-5678").as_deref(),
            Ok("01012345678")
        );
        // A landline in international form, with or without its trunk 0.
        assert_eq!(
            normalize_phone("+86 571 8765 4321").as_deref(),
            Ok("057187654321")
        );
        assert_eq!(
            normalize_phone("0086 (0571) 8765 4321").as_deref(),
            Ok("057187654321")
        );
    }

    #[test]
    fn phones_hidden_in_identifiers_and_text_are_seen() {
        for s in [
            "T13800138000",
            "T-138-0013-8000",
            "call 138 0013 8000 please",
            "ＴＫ１３８００１３８０００",
        ] {
            assert!(may_hold_phone(s), "{s}");
        }
        for s in [
            "T2026112300001",
            "INC-20261203",
            "C0420007",
            "left the company",
            "S00101",
            "",
        ] {
            assert!(!may_hold_phone(s), "{s}");
        }
    }

    #[test]
    fn other_countries_and_double_prefixes_are_refused() {
        // A US number is not a Chinese mobile that happens to start with 15.
        for raw in ["+1 555 123 4567", "001 555 123 4567", "+44 20 7946 0958"] {
            assert!(normalize_phone(raw).is_err(), "{raw}");
        }
        // Found by the `phone` fuzz target: a normal form its own normalisation could not reproduce.
        assert!(normalize_phone("0086008608600861").is_err());
        assert!(normalize_phone("008608600861").is_err());
    }

    #[test]
    fn rejects_junk_without_echoing_it() {
        for raw in [
            "",
            "12345",
            "1380013800",
            "23800138000",
            "138****5678",
            "call me",
            "1380013800012345678901",
        ] {
            let err = normalize_phone(raw).expect_err(raw);
            let msg = err.to_string();
            assert!(msg.contains("phone"));
            if raw.len() > 3 {
                assert!(!msg.contains(raw), "{msg}");
            }
        }
    }

    proptest! {
        #[test]
        fn whatever_is_accepted_normalises_to_itself(raw in "[+]?[0-9 ()-]{0,24}") {
            if let Ok(once) = normalize_phone(&raw) {
                prop_assert_eq!(normalize_phone(&once).unwrap(), once);
            }
        }


        #[test]
        fn normalisation_is_idempotent_and_digits_only(n in 3u8..=9, rest in "[0-9]{9}", sep in "[ -]?") {
            let raw = format!("+86{sep}1{n}{}{sep}{}", &rest[..4], &rest[4..]);
            let once = normalize_phone(&raw).unwrap();
            prop_assert!(once.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(once.len(), 11);
            prop_assert_eq!(normalize_phone(&once).unwrap(), once);
        }
    }
}
