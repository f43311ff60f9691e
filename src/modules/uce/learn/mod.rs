//! The built-in learning filter: token counts in SQL (shared by every node), learned from trap
//! hits (spam), from replays of refused mail (ham) and from `sponts learn`; a message's spam
//! probability comes from its tokens' counts.

mod bayes;
pub mod tokens;

use anyhow::Result;

use crate::storage::Store;
use crate::storage::TOTALS_TOKEN;

/// The filter's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classified {
    pub probability: f64,
}

/// The spam probability of a message, or None while the filter has learned fewer than
/// `min_messages` of spam or of ham.
pub async fn classify(
    store: &Store,
    message: &[u8],
    min_messages: u64,
) -> Result<Option<Classified>> {
    let mut hashes = tokens::hashes(message);
    hashes.push(TOTALS_TOKEN);
    let rows = store.token_counts(&hashes).await?;
    let (spam, ham) = rows
        .iter()
        .find(|r| r.0 == TOTALS_TOKEN)
        .map(|r| (r.1, r.2))
        .unwrap_or((0, 0));
    if spam < min_messages as i64 || ham < min_messages as i64 {
        return Ok(None);
    }
    let counts: Vec<(i64, i64)> = rows
        .iter()
        .filter(|r| r.0 != TOTALS_TOKEN)
        .map(|r| (r.1, r.2))
        .collect();
    Ok(bayes::spam_probability(&counts, spam, ham).map(|probability| Classified { probability }))
}

/// The filter's points: from 0 at probability 0.5 up to `weight` at `spam_probability`, and
/// down to `-weight` at 0.05 (a sure ham verdict).
pub fn points(config: &crate::config::LearningConfig, probability: f64) -> f64 {
    let w = config.weight;
    if probability >= 0.5 {
        w * ((probability - 0.5) / (config.spam_probability - 0.5)).min(1.0)
    } else {
        -w * ((0.5 - probability) / 0.45).min(1.0)
    }
}

/// Learns one message; `key` identifies it (a transaction id, or a digest of the file), so the
/// same message is never counted twice. False when it was already learned that way.
pub async fn learn(store: &Store, key: &str, message: &[u8], spam: bool) -> Result<bool> {
    store
        .learn_tokens(key, spam, &tokens::hashes(message))
        .await
}

#[cfg(test)]
mod tests {
    use super::points;
    use crate::config::LearningConfig;

    #[test]
    fn points_follow_the_probability() {
        let c = LearningConfig::default();
        assert_eq!(points(&c, 0.5), 0.0);
        assert!(
            (points(&c, 0.7) - 5.0).abs() < 1e-9,
            "halfway to 0.9 is the tag score"
        );
        assert_eq!(points(&c, 0.95), 10.0);
        assert_eq!(points(&c, 0.0), -10.0);
        assert!((points(&c, 0.275) + 5.0).abs() < 1e-9);
    }
}
