//! A message's score: points from every check, the level they reach, and what the domain's
//! policy makes of that level.

use crate::config::{SpamPolicy, UceConfig};
use crate::pipeline::Verdict;
use crate::smtp::reply::{Reply, replies};

/// How sure sponts is that a message is spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Clean,
    /// Suspect: delivered with `X-Spam-*` headers.
    Tag,
    /// Sure: the policy applies.
    Spam,
}

/// Points and the reasons behind them.
#[derive(Debug, Clone, Default)]
pub struct Score {
    pub points: f64,
    pub reasons: Vec<String>,
    /// A check that decides on its own (trap, penalty box, an engine's reject threshold).
    pub sure: Option<String>,
    /// An engine's tag threshold was reached.
    pub suspect: bool,
}

impl Score {
    pub fn add(&mut self, points: f64, reason: String) {
        self.points += points;
        self.reasons.push(format!("{reason} {points:+.1}"));
    }

    pub fn level(&self, config: &UceConfig) -> Level {
        if self.sure.is_some() || self.points >= config.reject_score {
            Level::Spam
        } else if self.suspect || self.points >= config.tag_score {
            Level::Tag
        } else {
            Level::Clean
        }
    }

    /// `score 12.3 [dnsbl zen.example +5.0, bayes 0.99 +9.8]`.
    pub fn describe(&self) -> String {
        let mut s = format!("score {:.1}", self.points);
        if let Some(why) = &self.sure {
            s.push_str(&format!(" ({why})"));
        }
        if !self.reasons.is_empty() {
            s.push_str(&format!(" [{}]", self.reasons.join(", ")));
        }
        s
    }

    /// The tag headers for a delivered suspect (or `tag`-policy spam) message.
    pub fn headers(&self, level: Level) -> Vec<String> {
        let yes = level >= Level::Tag;
        let tests: Vec<&str> = self
            .reasons
            .iter()
            .map(|r| r.split(' ').next().unwrap_or(""))
            .collect();
        vec![
            format!("X-Spam-Flag: {}", if yes { "YES" } else { "NO" }),
            format!("X-Spam-Score: {:.1}", self.points),
            format!(
                "X-Spam-Status: {}, score={:.1} tests={}",
                if yes { "Yes" } else { "No" },
                self.points,
                tests.join(",")
            ),
        ]
    }
}

/// What a sure spam verdict becomes under `policy`: a refusal (`rcpt` named in the "user
/// unknown" form), or None for the policies that accept (`tag`, `quarantine`).
pub fn refusal(policy: SpamPolicy, rcpt: &str) -> Option<Verdict> {
    match policy {
        SpamPolicy::RejectAsUnknown => Some(Verdict::Reject(replies::user_unknown(rcpt))),
        SpamPolicy::Reject => Some(Verdict::Reject(Reply::new(
            554,
            "5.7.1",
            "Message refused as spam",
        ))),
        SpamPolicy::Tag | SpamPolicy::Quarantine => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_thresholds() {
        let c = UceConfig::default();
        let mut s = Score::default();
        assert_eq!(s.level(&c), Level::Clean);
        s.add(5.0, "dnsbl zen.example".into());
        assert_eq!(s.level(&c), Level::Tag);
        s.add(5.0, "bayes 0.99".into());
        assert_eq!(s.level(&c), Level::Spam);
        assert_eq!(
            s.describe(),
            "score 10.0 [dnsbl zen.example +5.0, bayes 0.99 +5.0]"
        );
        let mut t = Score::default();
        t.sure = Some("trap hit".into());
        assert_eq!(t.level(&c), Level::Spam);
        assert!(
            matches!(refusal(SpamPolicy::RejectAsUnknown, "a@b"), Some(Verdict::Reject(r)) if r.code == 550 && r.enhanced == "5.1.1")
        );
        assert!(
            matches!(refusal(SpamPolicy::Reject, "a@b"), Some(Verdict::Reject(r)) if r.code == 554)
        );
        assert_eq!(refusal(SpamPolicy::Tag, "a@b"), None);
        assert_eq!(s.headers(Level::Spam)[0], "X-Spam-Flag: YES");
    }
}
