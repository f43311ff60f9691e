//! The digest: one mail per user with something held back, listing it with one-click links that
//! replay a message once, without logging in.

mod common;

use common::http::request;
use common::*;

#[tokio::test]
async fn digest_lists_refused_mail_and_its_links_replay_once() {
    let refusing = Capture::start(CaptureOptions {
        data_reply: Some("554 5.7.1 Spam".into()),
        ..Default::default()
    })
    .await;
    let gw = gateway(refusing.addr, "").await;
    gw.store
        .add_user(
            "alice@example.org",
            &sponts::auth::hash_password("password for tests").unwrap(),
            sponts::storage::Role::User,
        )
        .await
        .unwrap();
    for (subject, rcpt) in [
        ("Cheap watches", "alice@example.org"),
        ("Your parcel", "alice@example.org"),
        ("Other", "bob@example.org"),
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "bulk@spam.example",
                &[rcpt],
                format!("Subject: {subject}\r\n\r\nbuy\r\n").as_bytes(),
            )
            .await;
        assert!(r.starts_with("554"), "{r}");
    }
    // The backend now takes mail; digests and replays go there.
    let good = Capture::start(CaptureOptions::default()).await;
    let (mut config, _dir) = config(good.addr, "");
    config.web.listen = "127.0.0.1:0".parse().unwrap();
    let web = sponts::web::start(
        config.clone(),
        gw.store.clone(),
        &sponts::smtp::tls::CertSlot::load(&config).unwrap(),
    )
    .await
    .unwrap();
    config.digest.base_url = format!("http://{}", web.addr);

    assert_eq!(
        sponts::digest::run_once(&config, &gw.store).await.unwrap(),
        1,
        "alice only: bob has no account"
    );
    assert_eq!(
        sponts::digest::run_once(&config, &gw.store).await.unwrap(),
        0,
        "nothing new since"
    );
    let d = good.wait_for(1).await;
    assert_eq!(d[0].rcpts, vec!["alice@example.org"]);
    assert_eq!(
        d[0].mail,
        format!("<postmaster@example.org> SIZE={}", d[0].data.len())
    );
    let text = String::from_utf8(d[0].data.clone()).unwrap();
    assert!(
        text.contains("Subject: 2 messages held back for you"),
        "{text}"
    );
    assert!(
        text.contains("Cheap watches") && text.contains("Your parcel") && !text.contains("Other"),
        "{text}"
    );
    let links: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&config.digest.base_url))
        .collect();
    assert_eq!(links.len(), 2, "one link per message: {text}");
    assert!(text.contains(&format!("All your mail: {}/", config.digest.base_url)));
    let first = links[0];
    assert!(first.starts_with("/r/"));

    let get = request(web.addr, "GET", first, &[], None).await;
    assert_eq!(get.status, 200);
    assert!(get.text().contains("Cheap watches") && get.text().contains("Deliver it"));
    assert_eq!(
        good.deliveries().len(),
        1,
        "a GET delivers nothing (link scanners)"
    );
    let post = request(web.addr, "POST", first, &[], None).await;
    assert_eq!(post.status, 200, "{}", post.text());
    let d = good.wait_for(2).await;
    assert_eq!(d[1].rcpts, vec!["alice@example.org"]);
    assert!(
        d[1].data
            .ends_with(b"Subject: Cheap watches\r\n\r\nbuy\r\n")
    );
    let again = request(web.addr, "POST", first, &[], None).await;
    assert_eq!(again.status, 410, "single use");
    assert_eq!(request(web.addr, "GET", first, &[], None).await.status, 410);
    let mut forged = first.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        request(web.addr, "POST", &forged, &[], None).await.status,
        404
    );
    assert_eq!(good.deliveries().len(), 2);
    let journal = gw.store.query_journal(&Default::default()).await.unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.actor.as_deref() == Some("link:alice@example.org"))
    );
    web.stop();
    gw.stop().await;
}
