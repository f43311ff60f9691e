//! The built-in learning filter: token counts in SQL (shared by every node), learned from trap
//! hits (spam), from replays of refused mail (ham), from people's clicks and from `sponts
//! learn`; a message's spam probability comes from its tokens' counts — and, for mail to one
//! person, from that person's layer on top ([`layer`]).

mod bayes;
pub use bayes::token_probability;
pub use tokens::Family;
pub mod layer;
pub mod tokens;

use anyhow::Result;

use crate::storage::Store;
use crate::storage::TOTALS_TOKEN;

/// The filter's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classified {
    pub probability: f64,
    /// The person's layer changed at least one token's probability.
    pub personal: bool,
}

/// Where a learned message came from (shown on the filter's page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cli,
    Click,
    Trap,
    Replay,
    Journal,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Click => "click",
            Source::Trap => "trap",
            Source::Replay => "replay",
            Source::Journal => "journal",
        }
    }
}

/// One token of a message as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    pub hash: i64,
    pub family: Family,
    /// The probability that a message with this token is spam.
    pub probability: f64,
}

/// A message's tokens with their shared probabilities, or None while the filter has learned
/// fewer than `min_messages` of spam or of ham.
pub async fn shared_view(
    store: &Store,
    message: &[u8],
    min_messages: u64,
) -> Result<Option<Vec<Token>>> {
    let mut hashes = tokens::with_families(message);
    let mut all: Vec<i64> = hashes.iter().map(|t| t.0).collect();
    all.push(TOTALS_TOKEN);
    let rows = store.token_counts(&all).await?;
    let (spam, ham) = rows
        .iter()
        .find(|r| r.0 == TOTALS_TOKEN)
        .map(|r| (r.1, r.2))
        .unwrap_or((0, 0));
    if spam < min_messages.max(1) as i64 || ham < min_messages.max(1) as i64 {
        return Ok(None);
    }
    let counts: std::collections::HashMap<i64, (i64, i64)> = rows
        .iter()
        .filter(|r| r.0 != TOTALS_TOKEN)
        .map(|r| (r.0, (r.1, r.2)))
        .collect();
    hashes.sort_unstable();
    Ok(Some(view(hashes, &counts, spam, ham)))
}

/// A message's tokens with their probabilities from `counts` (token -> (spam, ham)), given how
/// many spam and ham messages were learned.
pub fn view(
    tokens: Vec<(i64, Family)>,
    counts: &std::collections::HashMap<i64, (i64, i64)>,
    spam: i64,
    ham: i64,
) -> Vec<Token> {
    tokens
        .into_iter()
        .map(|(hash, family)| {
            let (s, hm) = counts.get(&hash).copied().unwrap_or((0, 0));
            Token {
                hash,
                family,
                probability: bayes::token_probability(s, hm, spam, ham),
            }
        })
        .collect()
}

/// The tokens as `owner` sees them: the shared probabilities with the owner's layer on top.
/// True when the layer changed one.
pub async fn personal_view(
    store: &Store,
    owner: &str,
    shared: Vec<Token>,
) -> Result<(Vec<Token>, bool)> {
    let hashes: Vec<i64> = shared.iter().map(|t| t.hash).collect();
    let clicks: std::collections::HashMap<i64, (i64, i64)> = store
        .user_token_counts(owner, &hashes)
        .await?
        .into_iter()
        .map(|r| (r.0, (r.1, r.2)))
        .collect();
    let changed = !clicks.is_empty();
    let view = shared
        .into_iter()
        .map(|t| match clicks.get(&t.hash) {
            Some(&(s, hm)) => Token {
                probability: layer::personal(t.probability, s, hm),
                ..t
            },
            None => t,
        })
        .collect();
    Ok((view, changed))
}

/// The spam probability of a message, or None while the filter has learned fewer than
/// `min_messages` of spam or of ham.
pub async fn classify(
    store: &Store,
    message: &[u8],
    min_messages: u64,
) -> Result<Option<Classified>> {
    classify_for(store, message, min_messages, None).await
}

/// [`classify`] for mail to one person (`owner`, an account): their layer on top.
pub async fn classify_for(
    store: &Store,
    message: &[u8],
    min_messages: u64,
    owner: Option<&str>,
) -> Result<Option<Classified>> {
    let Some(view) = shared_view(store, message, min_messages).await? else {
        return Ok(None);
    };
    let (view, personal) = match owner {
        Some(o) => personal_view(store, o, view).await?,
        None => (view, false),
    };
    Ok(combine(&view).map(|probability| Classified {
        probability,
        personal,
    }))
}

/// The message's probability from its tokens' probabilities.
pub fn combine(view: &[Token]) -> Option<f64> {
    bayes::combine(view.iter().map(|t| (t.family, t.probability)))
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

/// [`learn`], noting where the message came from.
pub async fn learn_from(
    store: &Store,
    key: &str,
    message: &[u8],
    spam: bool,
    source: Source,
) -> Result<bool> {
    store
        .learn_tokens_from(key, spam, &tokens::hashes(message), source.as_str())
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
