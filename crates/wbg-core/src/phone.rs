//! Phone number normalisation: digits only, country code stripped, shape checked.
use crate::CoreError;

/// Normalises a Chinese phone number to digits only, with the country code (`+86`, `0086`, `86`) stripped.
///
/// Accepts spaces, dashes, dots and brackets as separators. A mobile number must be 11 digits starting with
/// `1[3-9]`; a landline starts with `0` and has 10 to 12 digits (area code plus number). Anything else is an
/// error that names the field `phone` and never the number.
pub fn normalize_phone(raw: &str) -> Result<String, CoreError> {
    let mut digits = String::with_capacity(raw.len());
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
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
    let national = if let Some(rest) = digits.strip_prefix("0086") {
        rest
    } else if digits.len() == 13 && digits.starts_with("86") {
        &digits[2..]
    } else {
        &digits[..]
    };
    let ok = match national.as_bytes() {
        [b'1', second, ..] => national.len() == 11 && (b'3'..=b'9').contains(second),
        [b'0', ..] => (10..=12).contains(&national.len()),
        _ => false,
    };
    if ok {
        Ok(national.to_owned())
    } else {
        Err(CoreError::invalid(
            "phone",
            "must be an 11-digit mobile number or a landline with area code",
        ))
    }
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
        fn normalisation_is_idempotent_and_digits_only(n in 3u8..=9, rest in "[0-9]{9}", sep in "[ -]?") {
            let raw = format!("+86{sep}1{n}{}{sep}{}", &rest[..4], &rest[4..]);
            let once = normalize_phone(&raw).unwrap();
            prop_assert!(once.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(once.len(), 11);
            prop_assert_eq!(normalize_phone(&once).unwrap(), once);
        }
    }
}
