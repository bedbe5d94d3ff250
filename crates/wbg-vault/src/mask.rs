//! Masking rules of the masked view and the label: what a masked phone or name may still show.
//!
//! GB/T 41833-2022 (express electronic waybills) asks that a label hide at least one character of the name and
//! **at least six digits of the phone**. [`PhoneMask::default`] shows the first three and last two digits of a
//! mobile number (`138******78`); a carrier may hide more, never less.

/// Digits a masked phone always hides (of any number of 8 digits or more; shorter ones are hidden whole).
pub const MIN_HIDDEN_DIGITS: usize = 6;

/// How a phone is masked: how many leading and trailing digits stay visible, within [`MIN_HIDDEN_DIGITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneMask {
    /// Leading digits shown (0-3: at most the carrier prefix of a mobile number).
    pub keep_first: usize,
    /// Trailing digits shown (0-4).
    pub keep_last: usize,
}

impl Default for PhoneMask {
    fn default() -> Self {
        PhoneMask::STANDARD
    }
}

impl PhoneMask {
    /// The default: first 3 and last 2 (`138******78`), six of an 11-digit number hidden.
    pub const STANDARD: PhoneMask = PhoneMask {
        keep_first: 3,
        keep_last: 2,
    };

    /// The mask of earlier releases (`138****5678`): four hidden. Only the forensics read it, to match leaks of
    /// views shown before the standard mask.
    pub const LEGACY: PhoneMask = PhoneMask {
        keep_first: 3,
        keep_last: 4,
    };

    /// Refuses a mask that would show more than the standard allows.
    pub fn check(&self) -> Result<(), String> {
        if self.keep_first > 3
            || self.keep_last > 4
            || self.keep_first + self.keep_last > 11 - MIN_HIDDEN_DIGITS
        {
            return Err(format!(
                "a phone mask shows at most 3 leading and 4 trailing digits, and at most {} in all \
                 (at least {MIN_HIDDEN_DIGITS} of an 11-digit number hidden)",
                11 - MIN_HIDDEN_DIGITS
            ));
        }
        Ok(())
    }

    /// Masks a normalised phone number: at most `keep_first` leading and `keep_last` trailing digits stay, and
    /// never fewer than [`MIN_HIDDEN_DIGITS`] are hidden (on a short number the leading digits give way first);
    /// anything under 8 digits is masked whole. One `*` per hidden character, so lengths are kept.
    pub fn apply(&self, phone: &str) -> String {
        let chars: Vec<char> = phone.chars().collect();
        let n = chars.len();
        let (head, tail) = if n < 8 {
            (0, 0)
        } else {
            let visible = (self.keep_first + self.keep_last).min(n - MIN_HIDDEN_DIGITS);
            let tail = self.keep_last.min(visible);
            (self.keep_first.min(visible - tail), tail)
        };
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
            .collect()
    }

    /// [`PhoneMask::LEGACY`]'s form exactly as earlier releases made it (four hidden at least, so an 8-10 digit
    /// number keeps up to 3 leading and its last 2).
    pub fn legacy(phone: &str) -> String {
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
}

/// Masks a normalised phone number with the standard mask ([`PhoneMask::STANDARD`], `138******78`): the form
/// the blind index keeps a token of, so that a leak of masked views or labels is still matched.
pub fn mask_phone(phone: &str) -> String {
    PhoneMask::STANDARD.apply(phone)
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
        assert_eq!(mask_phone("13800135678"), "138******78");
        assert_eq!(mask_phone("057187654321"), "057*******21");
        assert_eq!(mask_phone("0101234567"), "01******67");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone("01234567"), "******67");
        assert_eq!(PhoneMask::legacy("13800135678"), "138****5678");
        assert_eq!(PhoneMask::legacy("01234567"), "01****67");
        let last4 = PhoneMask {
            keep_first: 0,
            keep_last: 4,
        };
        assert_eq!(last4.apply("13800135678"), "*******5678");
        assert_eq!(mask_name("王芳"), "王*");
        assert_eq!(mask_name("欧阳娜娜"), "欧*");
        assert_eq!(mask_name("王"), "*");
        assert!(PhoneMask::STANDARD.check().is_ok());
        assert!(
            PhoneMask::LEGACY.check().is_err(),
            "four hidden is below the standard"
        );
        assert!(PhoneMask {
            keep_first: 4,
            keep_last: 0
        }
        .check()
        .is_err());
    }

    proptest! {
        #[test]
        fn every_allowed_mask_hides_at_least_six_digits(
            p in "[0-9]{0,16}",
            keep_first in 0usize..=3,
            keep_last in 0usize..=4,
        ) {
            let mask = PhoneMask { keep_first, keep_last };
            prop_assume!(mask.check().is_ok());
            let m = mask.apply(&p);
            prop_assert_eq!(m.chars().count(), p.chars().count());
            let hidden = m.chars().filter(|c| *c == '*').count();
            prop_assert!(hidden >= MIN_HIDDEN_DIGITS.min(p.len()));
            prop_assert!(p.len() >= 8 || hidden == p.len());
            prop_assert!(m.chars().take_while(|c| *c != '*').count() <= keep_first || hidden == 0);
            prop_assert!(m.chars().rev().take_while(|c| *c != '*').count() <= keep_last || hidden == 0);
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
