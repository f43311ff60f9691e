//! A throwaway PostgreSQL database per test, on the server named by `SPONTS_TEST_POSTGRES`
//! (default: the local server on 127.0.0.1:5432). Tests make it and drop it themselves.

use sqlx::Connection;

pub fn admin_url() -> String {
    std::env::var("SPONTS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = admin_url();
        let name = format!(
            "sponts_test_{}",
            sponts::id::new_transaction_id().to_lowercase()
        );
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {admin} is needed for this test (set SPONTS_TEST_POSTGRES): {e}"
                )
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        TestDb {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_db(self) {
        let mut c = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
}
