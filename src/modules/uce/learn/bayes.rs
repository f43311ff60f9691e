//! Robinson's token probabilities combined by Fisher's chi-square method (as in SpamBayes):
//! a message's spam probability from its most telling tokens. Pure arithmetic, no I/O.

use super::Family;

/// Robinson's strength of the prior (s) and the prior itself (x) for rarely seen tokens.
const PRIOR_STRENGTH: f64 = 0.45;
const PRIOR: f64 = 0.5;
/// Tokens whose probability is this close to 0.5 say nothing and are left out.
const MIN_STRENGTH: f64 = 0.1;
/// At most this many of the strongest tokens are combined.
const MAX_DISCRIMINATORS: usize = 150;

/// Spam probability (0..=1) from `(spam, ham)` counts of the message's tokens, given how many
/// spam and ham messages were learned. None when no token says anything.
#[cfg(test)]
pub fn spam_probability(
    counts: &[(i64, i64)],
    spam_messages: i64,
    ham_messages: i64,
) -> Option<f64> {
    if spam_messages <= 0 || ham_messages <= 0 {
        return None;
    }
    combine(counts.iter().map(|&(s, h)| {
        (
            Family::FREE,
            token_probability(s, h, spam_messages, ham_messages),
        )
    }))
}

/// Robinson's probability that a message with this token is spam, from its counts: near 0.5
/// for a token seen rarely, the observed ratio for one seen often.
pub fn token_probability(spam: i64, ham: i64, spam_messages: i64, ham_messages: i64) -> f64 {
    let (s, h) = (spam.max(0) as f64, ham.max(0) as f64);
    let ps = (s / spam_messages.max(1) as f64).min(1.0);
    let ph = (h / ham_messages.max(1) as f64).min(1.0);
    if ps + ph == 0.0 {
        return PRIOR;
    }
    let p = ps / (ps + ph);
    let n = s + h;
    (PRIOR_STRENGTH * PRIOR + n * p) / (PRIOR_STRENGTH + n)
}

/// Does a token with this probability say something (is it far enough from 0.5)?
pub fn telling(probability: f64) -> bool {
    (probability - 0.5).abs() >= MIN_STRENGTH
}

/// Fisher's combination of the most telling token probabilities, a family's strongest token
/// alone speaking for it; None when none tells.
pub fn combine(tokens: impl Iterator<Item = (Family, f64)>) -> Option<f64> {
    let mut telling_tokens: Vec<(Family, f64)> = tokens
        .filter(|t| telling(t.1))
        .map(|(family, f)| (family, f.clamp(1e-6, 1.0 - 1e-6)))
        .collect();
    telling_tokens.sort_by(|a, b| (b.1 - 0.5).abs().total_cmp(&(a.1 - 0.5).abs()));
    let mut heard = std::collections::HashSet::new();
    let probs: Vec<f64> = telling_tokens
        .into_iter()
        .filter(|(family, _)| *family == Family::FREE || heard.insert(*family))
        .map(|t| t.1)
        .take(MAX_DISCRIMINATORS)
        .collect();
    if probs.is_empty() {
        return None;
    }
    let n = probs.len();
    let ln_ham: f64 = probs.iter().map(|f| f.ln()).sum();
    let ln_spam: f64 = probs.iter().map(|f| (1.0 - f).ln()).sum();
    let h = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
    let s = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
    Some(((s - h + 1.0) / 2.0).clamp(0.0, 1.0))
}

/// P(chi² > x2) for `v` (even) degrees of freedom.
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spammy_tokens_make_spam_and_hammy_make_ham() {
        let spammy = vec![(90, 1), (80, 0), (70, 2), (50, 1)];
        let hammy = vec![(1, 90), (0, 80), (2, 70)];
        let p = spam_probability(&spammy, 100, 100).unwrap();
        assert!(p > 0.95, "{p}");
        let p = spam_probability(&hammy, 100, 100).unwrap();
        assert!(p < 0.05, "{p}");
        let mixed: Vec<_> = spammy.iter().chain(hammy.iter()).copied().collect();
        let p = spam_probability(&mixed, 100, 100).unwrap();
        assert!(
            (0.2..0.8).contains(&p),
            "uncertain when both sides speak: {p}"
        );
        assert_eq!(
            spam_probability(&[(5, 5)], 100, 100),
            None,
            "a neutral token says nothing"
        );
        assert_eq!(
            spam_probability(&spammy, 0, 100),
            None,
            "nothing learned, no verdict"
        );
    }

    #[test]
    fn a_family_speaks_once() {
        let tags = Family(7);
        // Twenty tags of an HTML newsletter, each a little spammy, against three hammy words.
        let newsletter = std::iter::repeat((tags, 0.93)).take(20).chain([
            (Family::FREE, 0.1),
            (Family::FREE, 0.2),
            (Family::FREE, 0.3),
        ]);
        let p = combine(newsletter.clone()).unwrap();
        assert!(p < 0.5, "the words decide, not the tags' number: {p}");
        let as_free = newsletter.map(|(_, f)| (Family::FREE, f));
        assert!(
            combine(as_free).unwrap() > 0.9,
            "counted one by one, the same tags would have made it spam"
        );
    }

    #[test]
    fn chi2q_known_values() {
        assert!((chi2q(0.0, 2) - 1.0).abs() < 1e-12);
        // P(chi2 > 5.991 | 2 dof) = 0.05.
        assert!((chi2q(5.991, 2) - 0.05).abs() < 1e-3);
        // P(chi2 > 9.488 | 4 dof) = 0.05.
        assert!((chi2q(9.488, 4) - 0.05).abs() < 1e-3);
    }
}
