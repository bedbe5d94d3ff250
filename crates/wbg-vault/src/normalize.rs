//! Normalisation of names and addresses before blind indexing, so that reformatted copies still match.
use unicode_normalization::UnicodeNormalization;

/// Applies `pass` until its output stops changing, so the result is idempotent by construction: Unicode
/// normalisation interleaved with filtering can need a second pass (a removed space lets combining marks meet
/// and reorder). Text of ASCII and CJK ideographs only — nearly every real name and address — is stable after
/// one pass and skips the check.
fn fixpoint(input: &str, pass: impl Fn(&str) -> String) -> String {
    let mut cur = pass(input);
    if cur
        .chars()
        .all(|c| c.is_ascii() || ('\u{4e00}'..='\u{9fff}').contains(&c))
    {
        return cur;
    }
    for _ in 0..8 {
        let next = pass(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Whether every character is ASCII or a CJK unified ideograph (U+4E00–U+9FFF): such text has no canonical or
/// compatibility decomposition and no combining marks, so NFKC and NFC leave it as it is and only the filtering
/// and case folding of a pass change it. Nearly every real name and address is such text.
fn plain(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii() || ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// NFKC (full-width to half-width), whitespace removed, lower case, recomposed; repeated to a fixpoint.
pub fn normalize_name(name: &str) -> String {
    if plain(name) {
        return name
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    full_name(name)
}

/// `normalize_name` without the shortcut for plain text.
fn full_name(name: &str) -> String {
    fixpoint(name, |s| {
        s.nfkc()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .nfc()
            .collect()
    })
}

/// NFKC, lower case, recomposed, then only letters and digits kept (CJK characters are letters); repeated to a
/// fixpoint. Punctuation, spacing and stray combining marks between copies of one address disappear.
pub fn normalize_address(parts: &[&str]) -> String {
    if parts.iter().all(|p| plain(p)) {
        return parts
            .iter()
            .flat_map(|p| p.chars())
            .filter(|c| c.is_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    full_address(&parts.concat())
}

/// `normalize_address` of one joined string, without the shortcut for plain text.
fn full_address(joined: &str) -> String {
    fixpoint(joined, |s| {
        s.nfkc()
            .flat_map(char::to_lowercase)
            .nfc()
            .filter(|c| c.is_alphanumeric())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn full_width_and_spacing_fold() {
        assert_eq!(normalize_name(" 王 芳 "), "王芳");
        assert_eq!(normalize_name("Ｗａｎｇ　Ｆａｎｇ"), "wangfang");
        assert_eq!(
            normalize_address(&["浙江省", "杭州市", "萧山区", "建设一路６６号，3-201"]),
            normalize_address(&["浙江省杭州市", "萧山区", "建设一路 66号 3 201"])
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn plain_text_shortcut_equals_the_full_normalisation(
            s in "[\\x00-\\x7f\u{4e00}-\u{9fff}]{0,30}"
        ) {
            prop_assert!(plain(&s));
            prop_assert_eq!(normalize_name(&s), full_name(&s));
            prop_assert_eq!(normalize_address(&[&s]), full_address(&s));
        }

        #[test]
        fn normalisation_is_idempotent(s in "\\PC{0,30}") {
            let n = normalize_name(&s);
            prop_assert_eq!(normalize_name(&n), n.clone());
            let a = normalize_address(&[&s]);
            prop_assert_eq!(normalize_address(&[&a]), a.clone());
        }
    }
}
