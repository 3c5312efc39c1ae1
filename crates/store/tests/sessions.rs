//! Web sessions on both backends.

use ::time::{Duration, OffsetDateTime};
use switchboard_core::time::truncate_to_millis;
use switchboard_core::user::{Session, User};
use switchboard_core::{Role, SessionId, UserId};
use switchboard_store::{Store, StoreError};
use switchboard_testkit::{both_backends, TestDb};

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

async fn user(store: &Store) -> User {
    let t = now();
    let user = User {
        id: UserId::new(),
        email: format!("{}@example.com", UserId::new()),
        name: "Ada".into(),
        role: Role::Agent,
        password_hash: None,
        default_sender_id: None,
        permitted_sender_ids: vec![],
        created_at: t,
        updated_at: t,
    };
    store.create_user(&user).await.unwrap();
    user
}

fn session(user: UserId, expires_in: Duration) -> Session {
    let t = now();
    Session {
        id: SessionId::new(),
        user_id: user,
        csrf_token: format!("csrf-{}", SessionId::new()),
        created_at: t,
        expires_at: t + expires_in,
        last_seen_at: t,
    }
}

async fn sessions_are_found_by_hash_touched_and_ended(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let ada = user(&store).await;
    let s = session(ada.id, Duration::hours(8));
    store.create_session(&s, "hash-a").await.unwrap();
    assert_eq!(
        store.find_session_by_hash("hash-a").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.find_session_by_hash("hash-b").await.unwrap(), None);

    let later = s.last_seen_at + Duration::minutes(5);
    store
        .touch_session(s.id, later, later + Duration::hours(8))
        .await
        .unwrap();
    let touched = store.find_session_by_hash("hash-a").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, later);
    assert_eq!(touched.expires_at, later + Duration::hours(8));
    assert_eq!(touched.created_at, s.created_at);

    store.delete_session(s.id).await.unwrap();
    assert_eq!(store.find_session_by_hash("hash-a").await.unwrap(), None);
    // Logging out twice is harmless.
    store.delete_session(s.id).await.unwrap();

    let ghost = session(UserId::new(), Duration::hours(1));
    match store.create_session(&ghost, "hash-ghost").await {
        Err(StoreError::MissingReference { field, .. }) => assert_eq!(field, "user_id"),
        other => panic!("expected a missing user, got {other:?}"),
    }
}

async fn expired_and_deleted_users_sessions_go(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let ada = user(&store).await;
    let grace = user(&store).await;
    let old = session(ada.id, Duration::minutes(-1));
    let live = session(ada.id, Duration::hours(1));
    let other = session(grace.id, Duration::hours(1));
    store.create_session(&old, "old").await.unwrap();
    store.create_session(&live, "live").await.unwrap();
    store.create_session(&other, "other").await.unwrap();

    assert_eq!(store.delete_expired_sessions(now()).await.unwrap(), 1);
    assert!(store.find_session_by_hash("old").await.unwrap().is_none());
    assert!(store.find_session_by_hash("live").await.unwrap().is_some());

    assert_eq!(store.delete_user_sessions(ada.id).await.unwrap(), 1);
    assert!(store.find_session_by_hash("live").await.unwrap().is_none());

    // Deleting the user takes their sessions with them.
    store.delete_user(grace.id).await.unwrap();
    assert!(store.find_session_by_hash("other").await.unwrap().is_none());
}

both_backends!(
    sessions_are_found_by_hash_touched_and_ended,
    expired_and_deleted_users_sessions_go,
);
