//! Masking rules of the masked view: what a masked phone or name may still show.

/// Masks a normalised phone number: an 11-or-more-digit number keeps its first 3 and last 4 digits
/// (`138****5678`); an 8-to-10-digit one keeps its last 2 and up to 3 leading digits so that at least 4 stay
/// hidden; anything under 8 digits is masked whole. One `*` per hidden character, so lengths are kept.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        11.. => (3, 4),
        8..=10 => ((n - 6).min(3), 2),
        _ => (0, 0),
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// Masks a name to its first character and one `*` (`王*`); a one-character name becomes `*`.
pub fn mask_name(name: &str) -> String {
    let mut it = name.trim().chars();
    match (it.next(), it.next()) {
        (Some(first), Some(_)) => format!("{first}*"),
        _ => "*".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(mask_phone("13800135678"), "138****5678");
        assert_eq!(mask_phone("057187654321"), "057*****4321");
        assert_eq!(mask_phone("0101234567"), "010*****67");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone("01234567"), "01****67");
        assert_eq!(mask_name("王芳"), "王*");
        assert_eq!(mask_name("欧阳娜娜"), "欧*");
        assert_eq!(mask_name("王"), "*");
    }

    proptest! {
        #[test]
        fn masked_phone_hides_at_least_four_digits(p in "[0-9]{0,16}") {
            let m = mask_phone(&p);
            prop_assert_eq!(m.chars().count(), p.chars().count());
            let shown = m.chars().filter(|c| *c != '*').count();
            prop_assert!(shown <= 7);
            if !p.is_empty() {
                prop_assert!(m.chars().filter(|c| *c == '*').count() >= 4.min(p.len()));
            }
            // Every shown digit is in its original place.
            for (a, b) in m.chars().zip(p.chars()) {
                prop_assert!(a == '*' || a == b);
            }
        }

        #[test]
        fn masked_name_shows_at_most_the_first_character(n in "\\PC{0,12}") {
            let m = mask_name(&n);
            let shown: Vec<char> = m.chars().filter(|c| *c != '*').collect();
            prop_assert!(shown.len() <= 1);
            if let Some(c) = shown.first() {
                prop_assert_eq!(Some(*c), n.trim().chars().next());
                prop_assert!(n.trim().chars().count() >= 2);
            }
        }
    }
}
