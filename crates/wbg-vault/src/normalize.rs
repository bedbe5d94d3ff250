//! Normalisation of names and addresses before blind indexing, so that reformatted copies still match.
use unicode_normalization::UnicodeNormalization;

/// NFKC (full-width to half-width), whitespace removed, lower case.
pub fn normalize_name(name: &str) -> String {
    name.nfkc()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// NFKC, only letters and digits kept (CJK characters are letters), lower case. Punctuation and spacing
/// differences between copies of one address disappear.
pub fn normalize_address(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.nfkc())
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
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
        #[test]
        fn normalisation_is_idempotent(s in "\\PC{0,30}") {
            let n = normalize_name(&s);
            prop_assert_eq!(normalize_name(&n), n.clone());
            let a = normalize_address(&[&s]);
            prop_assert_eq!(normalize_address(&[&a]), a.clone());
        }
    }
}
