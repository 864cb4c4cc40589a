//! The rate limit's SQL against `hookline_core::rate::admit`, case by case:
//! the same decisions and the same state from the same inputs.

use hookline_core::{
    RateLimit, WebhookId,
    rate::{Admission, RateState, admit},
};
use time::OffsetDateTime;

use super::{store, webhook};

async fn state(db: &hookline_testkit::TestDb, id: WebhookId) -> RateState {
    let row = db
        .client()
        .await
        .query_one("SELECT second, used, next_free FROM webhook_rate WHERE webhook_id = $1", &[&id.as_uuid()])
        .await
        .expect("the row");
    RateState { second: row.get(0), used: u32::try_from(row.get::<_, i32>(1)).expect("small"), next_free: row.get(2) }
}

/// A scripted run of requests (fresh and held, on time, late, in bursts)
/// gets from the SQL exactly what the Rust rule says, step by step.
#[tokio::test]
async fn the_sql_follows_the_rule() {
    let db = hookline_testkit::TestDb::new().await;
    let store = store(&db).await;
    let id = webhook(&store, "t", &["*"], true).await;
    let limit = RateLimit::new(5).expect("valid");
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid");
    let ms = |n: i64| t0 + time::Duration::milliseconds(n);
    // (time, held): a burst of 7 fresh at once, held ones coming back, one
    // late, fresh ones while others wait, a quiet gap, then fresh again.
    let script = [
        (ms(0), false),
        (ms(0), false),
        (ms(0), false),
        (ms(1), false),
        (ms(2), false),
        (ms(3), false),
        (ms(4), false),
        (ms(210), true),
        (ms(420), true),
        (ms(500), false),
        (ms(900), true),
        (ms(990), true),
        (ms(999), true),
        (ms(999), true),
        (ms(1_000), true),
        (ms(1_001), true),
        (ms(1_002), false),
        (ms(5_000), false),
        (ms(5_001), false),
    ];
    let mut expected = RateState::fresh();
    for (i, (now, held)) in script.into_iter().enumerate() {
        let (next, decision) = admit(expected, now, limit, held);
        let got = store.rate_admit_at(id, limit, held, Some(now)).await.expect("admit");
        assert_eq!(got, decision, "step {i} at {now}, held {held}");
        assert_eq!(state(&db, id).await, next, "state after step {i}");
        expected = next;
        if let Admission::ComeBack(back) = got {
            assert!(back >= now, "step {i}: comes back later");
        }
    }
}
