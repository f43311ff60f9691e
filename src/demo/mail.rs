//! The demo's sample mail: business mail and spam made from a few dozen sentences each, varied
//! by a seeded generator so no two messages are alike, a PDF and a picture as attachments, the
//! EICAR test file, and the training sets the built-in filter learns from before the traffic.

/// A small deterministic generator (xorshift): the same demo every run.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const HAM_SUBJECTS: &[&str] = &[
    "Minutes of Tuesday's meeting",
    "Invoice for October",
    "Re: project timeline",
    "Lunch on Friday?",
    "Quarterly report draft",
    "Travel plans for the conference",
    "Updated contract",
    "Holiday schedule",
    "Server maintenance window",
    "Welcome to the team",
    "Re: budget review",
    "Agenda for the workshop",
    "Delivery confirmation",
    "Question about the offer",
    "Notes from the customer call",
];
const HAM_LINES: &[&str] = &[
    "Please find the agenda for next week attached.",
    "Could you review the draft before Thursday?",
    "I have updated the spreadsheet with the latest figures.",
    "The meeting room is booked from ten to eleven.",
    "Thanks for your help with the migration last week.",
    "Let me know if the new schedule works for you.",
    "The customer confirmed the order and the delivery date.",
    "We should discuss the budget in our next call.",
    "Attached is the signed contract for your records.",
    "The maintenance window is Saturday morning, from six to eight.",
    "I will be out of the office on Monday, Maria covers for me.",
    "The minutes are in the shared folder under projects.",
    "Our supplier moved the shipment to the second week of the month.",
    "Can we move the review to the afternoon?",
    "The workshop starts at nine; coffee will be ready from half past eight.",
];
const HAM_SENDERS: &[&str] = &[
    "maria.garcia@partner.example",
    "j.smith@supplier.example",
    "office@accounting.example",
    "lena@customer.example",
    "tom@partner.example",
];
const SPAM_SUBJECTS: &[&str] = &[
    "Your account has been suspended",
    "Claim your prize now",
    "Cheap watches and pills",
    "Limited offer: 90% off today",
    "Earn $5000 a week from home",
    "You have won the lottery",
    "Crypto profits guaranteed",
    "URGENT: verify your bank details",
    "Lose weight fast",
    "Exclusive deal just for you",
];
const SPAM_LINES: &[&str] = &[
    "Click here to claim your exclusive reward today!!!",
    "Act now, this offer expires in 24 hours!",
    "No prescription needed, discreet shipping worldwide.",
    "Guaranteed returns on your bitcoin investment.",
    "Verify your password at the link below to avoid suspension.",
    "Congratulations winner, send your details to receive the money.",
    "Buy viagra cialis cheap online pharmacy best price.",
    "Make money fast working from home, no experience needed.",
    "100% free, risk free, satisfaction guaranteed.",
    "Dear friend, you were selected for a special cash bonus.",
];
const SPAM_LINKS: &[&str] = &[
    "http://cheap-pills.example.biz/buy",
    "http://win-big.example.top/claim",
    "http://secure-bank-verify.example.xyz/login",
    "http://crypto-gains.example.click/join",
];
const SPAM_SENDERS: &[&str] = &[
    "promo@deals-4u.example",
    "winner@lottery-office.example",
    "support@bank-secure.example",
    "offers@cheap-meds.example",
];

/// A business message to `to`; every third one carries an attachment.
pub fn ham(dice: &mut Dice, n: usize, to: &str) -> (String, Vec<u8>) {
    let from = dice.pick(HAM_SENDERS);
    let subject = format!("{} ({})", dice.pick(HAM_SUBJECTS), 1000 + n);
    let mut body = String::from("Hello,\r\n\r\n");
    for _ in 0..3 + dice.next() % 3 {
        body.push_str(dice.pick(HAM_LINES));
        body.push_str("\r\n");
    }
    body.push_str("\r\nBest regards\r\n");
    let head = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <demo-ham-{n}@partner.example>\r\nMIME-Version: 1.0\r\n"
    );
    let message = match n % 3 {
        0 => with_attachment(&head, &body, &format!("invoice-{}.pdf", 1000 + n), "application/pdf", b"%PDF-1.4\n% sponts demo\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
        1 if n % 2 == 0 => with_attachment(&head, &body, "site-photo.png", "image/png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"),
        _ => format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").into_bytes(),
    };
    (from.to_string(), message)
}

/// Spam to `to`.
pub fn spam(dice: &mut Dice, n: usize, to: &str) -> (String, Vec<u8>) {
    let from = dice.pick(SPAM_SENDERS);
    let subject = dice.pick(SPAM_SUBJECTS);
    let mut body = String::new();
    for _ in 0..3 + dice.next() % 3 {
        body.push_str(dice.pick(SPAM_LINES));
        body.push_str("\r\n");
    }
    body.push_str(&format!(
        "{}?id={}\r\n",
        dice.pick(SPAM_LINKS),
        dice.next() % 100_000
    ));
    let message = format!(
        "From: \"Special Offers\" <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <demo-spam-{n}@mailer.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    );
    (from.to_string(), message.into_bytes())
}

/// Mail the filter is unsure of — a newsletter with an offer in it: tagged, not refused.
pub fn unsure(dice: &mut Dice, n: usize, to: &str) -> (String, Vec<u8>) {
    let mut body = String::from("Hello,\r\n\r\n");
    for _ in 0..2 {
        body.push_str(dice.pick(SPAM_LINES));
        body.push_str("\r\n");
    }
    let message = format!(
        "From: news@supplier.example\r\nTo: {to}\r\nSubject: {} ({})\r\nMessage-ID: <demo-unsure-{n}@supplier.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        dice.pick(HAM_SUBJECTS),
        n
    );
    ("news@supplier.example".to_string(), message.into_bytes())
}

/// A message carrying the EICAR test file, which every virus scanner reports.
pub fn virus(to: &str) -> Vec<u8> {
    let eicar = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    with_attachment(
        &format!(
            "From: billing@invoices.example\r\nTo: {to}\r\nSubject: Your invoice\r\nMIME-Version: 1.0\r\n"
        ),
        "Please see the attached invoice.\r\n",
        "invoice.com",
        "application/octet-stream",
        eicar,
    )
}

fn with_attachment(head: &str, body: &str, name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let boundary = "demo-boundary-7f3a";
    let lines = crate::base64::encode_lines(data);
    format!(
        "{head}Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--{boundary}\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{lines}--{boundary}--\r\n"
    )
    .into_bytes()
}

/// What the built-in filter learns first: `n` spam and `n` ham messages.
pub fn training(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut dice = Dice::new(7);
    let spam = (0..n)
        .map(|i| self::spam(&mut dice, 10_000 + i, "someone@demo.example").1)
        .collect();
    let ham = (0..n)
        .map(|i| self::ham(&mut dice, 10_000 + i, "someone@demo.example").1)
        .collect();
    (spam, ham)
}
