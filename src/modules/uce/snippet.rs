//! HTML snippets for web pages: a real address written so that people see it and harvesting
//! spiders do not (every character an entity, a hidden decoy inside, no `mailto:`), and a trap
//! address that only spiders see (a link hidden from people and from screen readers).

use crate::web::html::esc;

/// The address for people: `user@domain` as entities, with a hidden decoy run between user
/// and `@` that a tag-stripping spider keeps and a browser does not show.
pub fn obfuscated(address: &str, decoy: &str) -> String {
    let (user, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    format!(
        "<span class=\"sponts-address\">{}<span style=\"display:none\">{}</span>&#64;{}</span>",
        entities(user),
        esc(decoy),
        entities(domain)
    )
}

/// The trap for spiders: a link no person sees or follows.
pub fn hidden_trap(trap: &str) -> String {
    let t = esc(trap);
    format!(
        "<a href=\"mailto:{t}\" style=\"position:absolute;left:-9999px\" aria-hidden=\"true\" tabindex=\"-1\" rel=\"nofollow\">{t}</a>"
    )
}

fn entities(text: &str) -> String {
    text.chars().map(|c| format!("&#{};", c as u32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_not_in_the_source_in_clear() {
        let html = obfuscated("alice@example.org", "nospam");
        assert!(!html.contains("alice"));
        assert!(!html.contains("example.org"));
        assert!(html.contains("&#97;&#108;&#105;&#99;&#101;"));
        // What a tag-stripping spider reads is not the address.
        let stripped: String = html
            .split('<')
            .map(|p| p.split_once('>').map_or(p, |(_, t)| t))
            .collect();
        assert!(stripped.contains("nospam"));
        let trap = hidden_trap("bait@example.org");
        assert!(trap.contains("mailto:bait@example.org") && trap.contains("aria-hidden=\"true\""));
    }
}
