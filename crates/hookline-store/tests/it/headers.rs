//! Extra headers at rest: secret values sealed, and re-sealed under a new
//! key so the old one can be dropped.

use base64::Engine;
use hookline_core::{CustomHeaders, EventFilters, SigningToken, TenantId, WebhookId, WebhookName, WebhookUrl};
use hookline_store::{Created, EncryptionKeys, NewWebhook, PgSettings, Store};
use hookline_testkit::TestDb;
use time::OffsetDateTime;

fn keys(text: &str) -> EncryptionKeys {
    EncryptionKeys::parse(text).expect("valid keys")
}

fn key(id: &str, byte: u8) -> String {
    format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

async fn connect(db: &TestDb, encryption_keys: EncryptionKeys) -> Store {
    Store::connect(&PgSettings { url: db.url().to_owned(), pool_size: 2, encryption_keys })
        .await
        .expect("store connects")
}

/// A secret header is sealed under the current key; after a key rotation
/// the store re-seals it at connect, and it still opens once the old key is
/// gone.
#[tokio::test]
async fn secret_headers_are_resealed_on_key_rotation() {
    let db = TestDb::new().await;
    let store = connect(&db, keys(&key("k1", 1))).await;
    let headers = CustomHeaders::parse(
        [("Authorization", Some("Bearer s3cret"), true), ("X-Plain", Some("visible"), false)],
        &CustomHeaders::default(),
    )
    .expect("valid");
    let new = NewWebhook {
        scheme: Default::default(),
        tenant: TenantId::default(),
        name: WebhookName::parse("w").expect("name"),
        url: WebhookUrl::parse("https://example.com/h").expect("url"),
        token: SigningToken::parse("0123456789abcdef").expect("token"),
        events: EventFilters::parse(["*"]).expect("events"),
        active: true,
        headers: headers.clone(),
        rate_limit: None,
        recovery: Default::default(),
    };
    let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
    assert!(matches!(
        store.create_webhook(id, &new, OffsetDateTime::now_utc(), 10).await.expect("create"),
        Created::Webhook(_)
    ));
    let stored = |client: tokio_postgres::Client| async move {
        client
            .query_one("SELECT headers::text FROM webhooks", &[])
            .await
            .map(|r| r.get::<_, String>(0))
            .expect("the row")
    };
    let at_rest = stored(db.client().await).await;
    assert!(at_rest.contains("enc:v1:k1:") && !at_rest.contains("s3cret") && at_rest.contains("visible"), "{at_rest}");
    drop(store);

    // k2 current, k1 still listed: connecting re-seals under k2.
    let store = connect(&db, keys(&format!("{},{}", key("k2", 2), key("k1", 1)))).await;
    let at_rest = stored(db.client().await).await;
    assert!(at_rest.contains("enc:v1:k2:") && !at_rest.contains("enc:v1:k1:"), "{at_rest}");
    drop(store);

    // k1 gone: the header still opens.
    let store = connect(&db, keys(&key("k2", 2))).await;
    let webhook = store.get_webhook(id, None).await.expect("read").expect("exists");
    assert_eq!(webhook.headers, headers);
}
