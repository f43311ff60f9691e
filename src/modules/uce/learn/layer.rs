//! The per-user layer: a person's own "Spam" and "Not spam" clicks, combined with the shared
//! filter when mail is scored for that person alone. Pure arithmetic, no I/O.
//!
//! The shared filter's probability of a token is the *prior* of that token's probability for
//! one person, and each of the person's clicks that carried the token is one observation of it
//! (spam: 1, ham: 0) — Robinson's estimate again, one level up:
//!
//! ```text
//! f_person = (SHARED_STRENGTH * f_shared + spam_clicks) / (SHARED_STRENGTH + spam_clicks + ham_clicks)
//! ```
//!
//! With `SHARED_STRENGTH` 0.5 one click moves a token two thirds of the way to the person's side
//! (a sure spam token, 0.99, becomes 0.33 after one "Not spam"), so the next message of the same
//! kind is judged as the person said, while the shared counts (everyone's mail) are not touched
//! by one person's taste. A token nobody clicked keeps the shared probability: one person's
//! layer changes nothing for anyone else.

use super::{Token, bayes};

/// How many of a person's own clicks the shared filter's opinion of a token is worth.
pub const SHARED_STRENGTH: f64 = 0.5;

/// A token's spam probability for one person.
pub fn personal(shared: f64, spam_clicks: i64, ham_clicks: i64) -> f64 {
    let (s, h) = (spam_clicks.max(0) as f64, ham_clicks.max(0) as f64);
    if s + h == 0.0 {
        return shared;
    }
    (SHARED_STRENGTH * shared + s) / (SHARED_STRENGTH + s + h)
}

/// The tokens a click puts into the person's layer: those that spoke for the other side. A
/// "Not spam" takes every token that leaned to spam; a "Spam" only those that clearly spoke
/// for ham — a neutral word made spammy for someone would push all their mail towards refusal,
/// and a refused ham is worse than a tagged spam.
pub fn disagreeing(tokens: &[Token], spam: bool) -> Vec<i64> {
    tokens
        .iter()
        .filter(|t| {
            let f = t.probability;
            if spam {
                f < 0.5 && bayes::telling(f)
            } else {
                f > 0.5 + 1e-9
            }
        })
        .map(|t| t.hash)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_pulls_a_token_to_the_persons_side_and_nothing_else() {
        assert_eq!(personal(0.99, 0, 0), 0.99, "no click: the shared opinion");
        let one = personal(0.99, 0, 1);
        assert!(
            (one - 0.33).abs() < 1e-9 && !bayes::telling(0.5) && bayes::telling(one),
            "{one}"
        );
        assert!(personal(0.99, 0, 2) < one, "more clicks, more weight");
        assert!(personal(0.2, 1, 0) > 0.7, "a spam click on a hammy token");
        let tokens =
            [(1, 0.99), (2, 0.5), (3, 0.55), (4, 0.45), (5, 0.1)].map(|(hash, probability)| {
                Token {
                    hash,
                    family: crate::modules::uce::learn::Family::FREE,
                    probability,
                }
            });
        assert_eq!(
            disagreeing(&tokens, false),
            vec![1, 3],
            "not spam: what leaned to spam"
        );
        assert_eq!(
            disagreeing(&tokens, true),
            vec![5],
            "spam: what clearly spoke for ham"
        );
    }
}
