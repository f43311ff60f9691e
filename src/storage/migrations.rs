//! Versioned schema migrations, applied in order at open and recorded in `schema_migrations`.
//! On PostgreSQL an advisory lock keeps several nodes from migrating at once.

use anyhow::{Context, Result};

use super::{BeginWrite, Store, with_pool};

struct Migration {
    version: i64,
    /// Statements for both databases (the common subset of SQL); `{BLOB}` becomes each
    /// database's binary type.
    sql: &'static str,
    /// Then statements for one database only (full-text indexes differ).
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
CREATE TABLE journal (
    id TEXT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    client_ip TEXT NOT NULL,
    client_port INTEGER NOT NULL,
    helo TEXT NOT NULL,
    tls TEXT,
    sender TEXT NOT NULL,
    subject TEXT,
    message_id TEXT,
    size BIGINT,
    outcome TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    final_reply TEXT NOT NULL
);
CREATE INDEX journal_time ON journal (time_us);
CREATE INDEX journal_sender ON journal (sender);
CREATE INDEX journal_client_ip ON journal (client_ip);
CREATE TABLE journal_rcpt (
    journal_id TEXT NOT NULL REFERENCES journal (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    address TEXT NOT NULL,
    accepted BOOLEAN NOT NULL,
    reply TEXT NOT NULL,
    PRIMARY KEY (journal_id, position)
);
CREATE INDEX journal_rcpt_address ON journal_rcpt (address);
CREATE TABLE journal_attachment (
    journal_id TEXT NOT NULL REFERENCES journal (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    filename TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (journal_id, position)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 2,
        sql: r#"
CREATE TABLE backup (
    id TEXT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    size BIGINT NOT NULL,
    stored_size BIGINT NOT NULL,
    body {BLOB} NOT NULL
);
CREATE INDEX backup_time ON backup (time_us);
CREATE TABLE users (
    address TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE TABLE user_aliases (
    alias TEXT PRIMARY KEY,
    address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE
);
ALTER TABLE journal ADD COLUMN replay_of TEXT;
ALTER TABLE journal ADD COLUMN actor TEXT;
CREATE INDEX journal_replay_of ON journal (replay_of);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 3,
        sql: r#"
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_us);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 4,
        sql: r#"
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE used_links (
    token_hash TEXT PRIMARY KEY,
    used_us BIGINT NOT NULL
);
CREATE TABLE digest_state (
    address TEXT PRIMARY KEY,
    last_us BIGINT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 5,
        sql: r#"
ALTER TABLE journal ADD COLUMN search_text TEXT;
CREATE TABLE journal_party (
    address TEXT NOT NULL,
    journal_id TEXT NOT NULL REFERENCES journal (id) ON DELETE CASCADE,
    time_us BIGINT NOT NULL,
    PRIMARY KEY (address, journal_id)
);
CREATE INDEX journal_party_time ON journal_party (address, time_us);
INSERT INTO journal_party (address, journal_id, time_us)
    SELECT DISTINCT LOWER(sender), id, time_us FROM journal WHERE sender <> '';
INSERT INTO journal_party (address, journal_id, time_us)
    SELECT DISTINCT LOWER(r.address), r.journal_id, j.time_us FROM journal_rcpt r JOIN journal j ON j.id = r.journal_id
    ON CONFLICT (address, journal_id) DO NOTHING;
"#,
        sqlite: r#"
UPDATE journal SET search_text = LOWER(sender || ' ' || COALESCE(subject, '') || ' ' ||
    COALESCE((SELECT group_concat(address, ' ') FROM journal_rcpt r WHERE r.journal_id = journal.id), ''));
CREATE VIRTUAL TABLE journal_fts USING fts5 (search_text, content = '', tokenize = 'trigram');
INSERT INTO journal_fts (rowid, search_text) SELECT rowid, search_text FROM journal;
CREATE TRIGGER journal_fts_insert AFTER INSERT ON journal BEGIN
    INSERT INTO journal_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER journal_fts_delete AFTER DELETE ON journal BEGIN
    INSERT INTO journal_fts (journal_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
"#,
        postgres: r#"
UPDATE journal SET search_text = LOWER(sender || ' ' || COALESCE(subject, '') || ' ' ||
    COALESCE((SELECT string_agg(address, ' ') FROM journal_rcpt r WHERE r.journal_id = journal.id), ''));
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX journal_search_trgm ON journal USING gin (search_text gin_trgm_ops);
"#,
    },
    Migration {
        version: 6,
        sql: r#"
CREATE TABLE queue (
    id TEXT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    sender TEXT NOT NULL,
    size BIGINT NOT NULL,
    body {BLOB} NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_us BIGINT NOT NULL,
    last_reply TEXT NOT NULL,
    lease_until_us BIGINT NOT NULL,
    leased_by TEXT NOT NULL
);
CREATE INDEX queue_due ON queue (next_attempt_us);
CREATE INDEX queue_arrival ON queue (time_us);
CREATE TABLE queue_rcpt (
    queue_id TEXT NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    done BOOLEAN NOT NULL,
    last_reply TEXT NOT NULL,
    PRIMARY KEY (queue_id, address)
);
CREATE INDEX journal_rcpt_lower ON journal_rcpt (LOWER(address));
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 7,
        sql: r#"
CREATE TABLE pop3_hidden (
    address TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (address, message_id)
);
CREATE TABLE gateway_events (
    time_us BIGINT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX gateway_events_time ON gateway_events (time_us);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 8,
        sql: r#"
ALTER TABLE journal ADD COLUMN flag TEXT;
ALTER TABLE journal ADD COLUMN notes TEXT;
ALTER TABLE journal_rcpt ADD COLUMN delivered_to TEXT;
CREATE TABLE uce_disposable (
    owner TEXT NOT NULL,
    tag TEXT NOT NULL,
    address TEXT NOT NULL,
    max_count INTEGER NOT NULL,
    used INTEGER NOT NULL,
    locked BOOLEAN NOT NULL,
    created_us BIGINT NOT NULL,
    last_us BIGINT NOT NULL,
    PRIMARY KEY (owner, tag)
);
CREATE TABLE uce_penalty (
    ip TEXT PRIMARY KEY,
    until_us BIGINT NOT NULL,
    reason TEXT NOT NULL,
    hits INTEGER NOT NULL
);
CREATE TABLE uce_traps (
    pattern TEXT PRIMARY KEY,
    added_by TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE TABLE uce_greylist (
    triplet TEXT PRIMARY KEY,
    first_us BIGINT NOT NULL,
    last_us BIGINT NOT NULL
);
CREATE TABLE uce_greylist_allow (
    network TEXT PRIMARY KEY,
    until_us BIGINT NOT NULL
);
CREATE TABLE uce_learned (
    message TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    time_us BIGINT NOT NULL
);
CREATE TABLE uce_callback (
    ip TEXT PRIMARY KEY,
    ok BOOLEAN NOT NULL,
    until_us BIGINT NOT NULL
);
"#,
        // Token hashes are looked up by the thousand per message: on SQLite the hash is the
        // rowid itself (one B-tree search per token instead of index plus table).
        sqlite: "CREATE TABLE uce_tokens (hash INTEGER PRIMARY KEY, spam BIGINT NOT NULL, ham BIGINT NOT NULL);",
        postgres: "CREATE TABLE uce_tokens (hash BIGINT PRIMARY KEY, spam BIGINT NOT NULL, ham BIGINT NOT NULL);",
    },
    Migration {
        version: 9,
        sql: r#"
CREATE TABLE stats (
    hour_us BIGINT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (hour_us, metric, key)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 10,
        sql: r#"
CREATE TABLE report_mail (
    period TEXT PRIMARY KEY,
    sent_us BIGINT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 11,
        // A top list over a month reads its own rows only, from the index alone.
        sql: "CREATE INDEX stats_by_metric ON stats (metric, hour_us, key, value);",
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 12,
        sql: r#"
CREATE TABLE intercept_orders (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL,
    target TEXT NOT NULL,
    login TEXT,
    from_us BIGINT NOT NULL,
    until_us BIGINT NOT NULL,
    deliver TEXT NOT NULL,
    deliver_to TEXT,
    notes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    ended_us BIGINT
);
CREATE INDEX intercept_orders_target ON intercept_orders (target);
CREATE TABLE intercept_audit (
    seq BIGINT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 13,
        // Interception copies waiting for (or past) delivery to the agency.
        sql: r#"
CREATE TABLE intercept_copies (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    service TEXT NOT NULL,
    event TEXT NOT NULL,
    meta TEXT NOT NULL,
    content {BLOB},
    content_size BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_try_us BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    delivered_us BIGINT
);
CREATE INDEX intercept_copies_due ON intercept_copies (state, next_try_us);
CREATE INDEX intercept_copies_by_order ON intercept_copies (order_id, time_us);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 14,
        // Per-user (and per-domain, owner `@domain`) allow and block lists of senders.
        sql: r#"
CREATE TABLE sender_lists (
    owner TEXT NOT NULL,
    pattern TEXT NOT NULL,
    verdict TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (owner, pattern)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        // Outbound mail in the queue: a direction per message, a held reason (empty: not held),
        // and per recipient its route (`backend` or `mx`), destination domain and its own
        // schedule and lease (MX delivery is per destination, not per message).
        version: 15,
        sql: r#"
ALTER TABLE queue ADD COLUMN direction TEXT NOT NULL DEFAULT 'in';
ALTER TABLE queue ADD COLUMN held TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_rcpt ADD COLUMN route TEXT NOT NULL DEFAULT 'backend';
ALTER TABLE queue_rcpt ADD COLUMN domain TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_rcpt ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_rcpt ADD COLUMN next_attempt_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queue_rcpt ADD COLUMN lease_until_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queue_rcpt ADD COLUMN leased_by TEXT NOT NULL DEFAULT '';
CREATE INDEX queue_rcpt_mx_due ON queue_rcpt (route, done, next_attempt_us);
ALTER TABLE journal ADD COLUMN direction TEXT NOT NULL DEFAULT 'in';
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        // Senders locked out of outbound mail (a compromised account) until an admin unlocks them.
        version: 16,
        sql: r#"
CREATE TABLE outbound_locks (
    sender TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 18,
        // Outbound delivery: cached MTA-STS policies (RFC 8461) and per-day TLS results (RFC 8460).
        sql: r#"
CREATE TABLE mta_sts_policy (
    domain TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    policy TEXT NOT NULL,
    fetched_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE TABLE tls_results (
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    policy TEXT NOT NULL,
    mx TEXT NOT NULL,
    result TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    PRIMARY KEY (day, domain, policy, mx, result)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 19,
        // Outbound delivery: whether a recipient's sender has had the delay notice.
        sql: r#"
ALTER TABLE queue_rcpt ADD COLUMN delay_notified BOOLEAN NOT NULL DEFAULT FALSE;
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 20,
        // DKIM keys, shared by every node: the private key as PKCS#8 DER, the public key as it
        // goes into the DNS record (p=), and the key's life: pending -> active -> retiring -> retired;
        // `replaces`: the selector a rotation's new key takes over from.
        sql: r#"
CREATE TABLE dkim_keys (
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    state TEXT NOT NULL,
    private_key {BLOB} NOT NULL,
    public_key TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    activated_us BIGINT,
    retire_after_us BIGINT,
    retired_us BIGINT,
    replaces TEXT,
    PRIMARY KEY (domain, selector)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 22,
        // People from a directory (LDAP, the mail server's IMAP) cached beside local accounts:
        // where they came from, when the source last confirmed them and their password (whose
        // argon2 hash is `password_hash`, for sign-in while the source is down).
        sql: r#"
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE users ADD COLUMN directory_dn TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN directory_groups TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN checked_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_us BIGINT NOT NULL DEFAULT 0;
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 25,
        // The second factor: a TOTP secret per account (pending until confirmed with a code; the
        // last step used, so a code works once), hashed recovery codes, and whether a session has
        // passed the second factor.
        sql: r#"
CREATE TABLE user_totp (
    address TEXT PRIMARY KEY REFERENCES users (address) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    last_step BIGINT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE TABLE user_recovery_codes (
    address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_us BIGINT,
    PRIMARY KEY (address, code_hash)
);
ALTER TABLE web_sessions ADD COLUMN second_factor BOOLEAN NOT NULL DEFAULT FALSE;
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 26,
        // API tokens for scripts: named, made by a signed-in admin, acting with the creator's role.
        sql: r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 27,
        // Tamper evidence (src/archive/seal.rs): each kept message's SHA-256 recorded at
        // insertion; seals (a signed Merkle root per period, chained) with the (id, digest)
        // leaves they cover; signed records of what a purge removed and why.
        sql: r#"
ALTER TABLE backup ADD COLUMN digest TEXT NOT NULL DEFAULT '';
CREATE TABLE archive_seals (
    seq BIGINT PRIMARY KEY,
    day TEXT NOT NULL,
    from_us BIGINT NOT NULL,
    until_us BIGINT NOT NULL,
    count BIGINT NOT NULL,
    root TEXT NOT NULL,
    prev_root TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed_us BIGINT NOT NULL
);
CREATE TABLE archive_leaves (
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (seq, id)
);
CREATE INDEX archive_leaves_id ON archive_leaves (id);
CREATE TABLE archive_purges (
    pass_us BIGINT NOT NULL,
    day TEXT NOT NULL,
    entries TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    PRIMARY KEY (pass_us, day)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 28,
        // Legal holds (on a user, an address or a saved search) and their audit trail. Keyed by
        // text, not by the users table: a hold outlives the account.
        sql: r#"
CREATE TABLE archive_holds (
    id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    addresses TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_us BIGINT NOT NULL,
    released_us BIGINT
);
CREATE TABLE archive_hold_audit (
    hold_id BIGINT NOT NULL,
    time_us BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 33,
        // Training that people do: where each learned message came from (`cli`, `click`, `trap`,
        // `replay`, `journal`; empty for what was learned before this was recorded), every
        // user's "Spam" / "Not spam" click, and the per-user layer of the learning filter (token
        // counts per person, combined with the shared ones for mail to that person alone).
        sql: r#"
ALTER TABLE uce_learned ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE TABLE uce_marks (
    message TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    personal BOOLEAN NOT NULL,
    tokens TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    PRIMARY KEY (message, owner)
);
CREATE INDEX uce_marks_time ON uce_marks (time_us);
CREATE TABLE uce_user_tokens (
    owner TEXT NOT NULL,
    hash BIGINT NOT NULL,
    spam BIGINT NOT NULL,
    ham BIGINT NOT NULL,
    PRIMARY KEY (owner, hash)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 36,
        // IMAP UIDs of archived and queued messages: handed out once per message, ascending in
        // the order they were first listed, never reused (AUTOINCREMENT / a sequence).
        sql: "",
        sqlite: "CREATE TABLE imap_uid (uid INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE);",
        postgres: "CREATE TABLE imap_uid (uid BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL UNIQUE);",
    },
    Migration {
        version: 39,
        // TLS-RPT: which day's report each destination domain has had (claimed by one node).
        sql: r#"
CREATE TABLE tls_reports_sent (
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    sent_us BIGINT NOT NULL,
    PRIMARY KEY (day, domain)
);
"#,
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 40,
        // Outbound limits per SMTP AUTH account (journaled as the actor), over a window of time.
        sql: "CREATE INDEX journal_actor ON journal (LOWER(actor), time_us) WHERE actor IS NOT NULL;",
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 41,
        // The digests of big kept messages (streamed into SQLite as a zeroblob, which must stay
        // the last data of its record); `backup.digest` is empty for them.
        sql: "CREATE TABLE backup_digest (id TEXT PRIMARY KEY, digest TEXT NOT NULL);",
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 42,
        // SQLite: the trigram index of the search text is built in bulk, hundreds of records at a
        // time, instead of by a trigger in every journal commit (an FTS5 insert costs a tenth
        // per row in bulk). `upto` is the last journal rowid indexed; searches read the rows
        // above it directly. A row that reuses a rowid at or below `upto` (the newest record
        // was deleted) is indexed at once.
        sql: "",
        sqlite: r#"
CREATE TABLE journal_fts_state (upto INTEGER NOT NULL);
INSERT INTO journal_fts_state (upto) SELECT COALESCE(MAX(rowid), 0) FROM journal;
DROP TRIGGER journal_fts_insert;
DROP TRIGGER journal_fts_delete;
CREATE TRIGGER journal_fts_reused AFTER INSERT ON journal
    WHEN new.rowid <= (SELECT upto FROM journal_fts_state) BEGIN
    INSERT INTO journal_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER journal_fts_delete AFTER DELETE ON journal
    WHEN old.rowid <= (SELECT upto FROM journal_fts_state) BEGIN
    INSERT INTO journal_fts (journal_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
"#,
        postgres: "",
    },
    Migration {
        version: 43,
        // SQLite: the MX lease reads each queued message's `held` and `time_us`; in the table
        // `held` comes after the body (an added column), so every read walked the body's
        // overflow pages. An index holding both answers without the row.
        sql: "",
        sqlite: "CREATE INDEX queue_lease ON queue (id, held, time_us);",
        postgres: "",
    },
    Migration {
        version: 44,
        // Fewer index pages written per journal commit (on SQLite each b-tree a message touches
        // is one more 4 KiB page in the WAL): `replay_of` is NULL for all but replays, so only
        // those are indexed; every query of recipients compares LOWER(address), which has its
        // own index. SQLite: the figures' table is keyed by its primary key itself (WITHOUT
        // ROWID), one b-tree instead of a table and its key's index.
        sql: r#"
DROP INDEX journal_replay_of;
CREATE INDEX journal_replay_of ON journal (replay_of) WHERE replay_of IS NOT NULL;
DROP INDEX journal_rcpt_address;
"#,
        sqlite: r#"
CREATE TABLE stats_keyed (
    hour_us BIGINT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (hour_us, metric, key)
) WITHOUT ROWID;
INSERT INTO stats_keyed (hour_us, metric, key, value) SELECT hour_us, metric, key, value FROM stats;
DROP TABLE stats;
ALTER TABLE stats_keyed RENAME TO stats;
CREATE INDEX stats_by_metric ON stats (metric, hour_us, key, value);
"#,
        postgres: "",
    },
];

pub async fn run(store: &Store) -> Result<()> {
    with_pool!(store, pool => {
        let mut tx = pool.begin_write().await?;
        if let Store::Postgres(_) = store {
            sqlx::query("SELECT pg_advisory_xact_lock(7418522)").execute(&mut *tx).await?;
        }
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_us BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        // Every version not applied yet, not only those above the highest: versions are handed
        // out in blocks, and a lower one may land after a higher one was applied.
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let blob = if let Store::Postgres(_) = store { "BYTEA" } else { "BLOB" };
            let extra = if let Store::Postgres(_) = store { m.postgres } else { m.sqlite };
            let sql = format!("{}\n{extra}", m.sql.replace("{BLOB}", blob));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.with_context(|| format!("migration {}", m.version))?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_us) VALUES ($1, $2)")
                .bind(m.version)
                .bind(crate::clock::now_us())
                .execute(&mut *tx)
                .await?;
            tracing::info!(version = m.version, "database schema migrated");
        }
        tx.commit().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use crate::config::DatabaseLocation;
    use crate::storage::Store;

    /// A migration that lands after a higher-numbered one was applied is still applied.
    #[tokio::test]
    async fn a_missing_lower_version_is_applied_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatabaseLocation::Sqlite(dir.path().join("m.db"));
        let store = Store::open(&location).await.unwrap();
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        sqlx::raw_sql("DROP TABLE sender_lists; DELETE FROM schema_migrations WHERE version = 14")
            .execute(pool)
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&location).await.unwrap();
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sender_lists")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "the table is back");
        store.close().await;
    }
}
