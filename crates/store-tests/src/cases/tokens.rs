//! Tokens: sealed secrets, listing, versioning, key rotation.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::*;
use ports::*;

use crate::Harness;
use crate::changes::{self, commit};
use crate::fixtures::{self, customer, token};

/// A token, its raw secret included, survives storage.
pub async fn token_round_trips_with_its_secret<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let read = TokenRepository::get(&*s, &t.id).await.unwrap().unwrap();
    assert_eq!(read.value, t);
    assert_eq!(read.value.secret, t.secret);
}

/// The raw rows never contain the token in plaintext.
pub async fn token_secret_is_never_stored_in_plaintext<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let dump = h.raw_dump().await;
    assert!(
        dump.windows(t.id.as_str().len())
            .any(|w| w == t.id.as_str().as_bytes()),
        "the dump sees the rows"
    );
    let needle = &fixtures::SECRET.as_bytes()[..16];
    assert!(
        !dump.windows(needle.len()).any(|w| w == needle),
        "plaintext token in the database"
    );
}

/// A customer's tokens, and only theirs.
pub async fn tokens_are_listed_by_customer<H: Harness>(h: &H) {
    let s = h.store();
    let (a, b, other) = (token("cust-t"), token("cust-t"), token("other"));
    commit(
        &*s,
        changes::tokens(vec![
            Write::insert(a.clone()),
            Write::insert(b.clone()),
            Write::insert(other),
        ]),
    )
    .await
    .unwrap();
    let listed = TokenRepository::list_by_customer(&*s, &customer("cust-t"), Page::first(10))
        .await
        .unwrap();
    let ids: BTreeSet<_> = listed.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([a.id.clone(), b.id.clone()]));
    let first = TokenRepository::list_by_customer(&*s, &customer("cust-t"), Page::first(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let rest = TokenRepository::list_by_customer(
        &*s,
        &customer("cust-t"),
        Page {
            after: Some(first[0].id.clone()),
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(rest.len(), 1, "the other one");
    assert_ne!(rest[0].id, first[0].id);
}

/// Token status changes are optimistic-concurrency checked.
pub async fn token_update_is_versioned<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let mut read = TokenRepository::get(&*s, &t.id).await.unwrap().unwrap();
    read.value.request_disable();
    commit(&*s, changes::tokens(vec![Write::update(read.clone())]))
        .await
        .unwrap();
    assert!(matches!(
        commit(&*s, changes::tokens(vec![Write::update(read)])).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        TokenRepository::get(&*s, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value
            .status(),
        TokenStatus::Disabling
    );
}

/// After a key change the old key (as `RECUR_TOKEN_KEY_OLD`) still decrypts, and rotation re-encrypts.
pub async fn old_token_key_still_decrypts_and_rotation_reencrypts<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let old = h.token_key();
    let new = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let rotated = h.reopen_with_keys(new, Some(&old)).await;
    assert_eq!(
        TokenRepository::get(&*rotated, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value
            .secret,
        t.secret
    );
    assert_eq!(h.rotate(&rotated).await, 1);
    assert_eq!(h.rotate(&rotated).await, 0, "nothing left on the old key");
    let only_new = h.reopen_with_keys(new, None).await;
    assert_eq!(
        TokenRepository::get(&*only_new, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value,
        t
    );
}

/// A token is found by its raw bank token alone (through a keyed
/// fingerprint, before and after a key rotation), and one raw token is held
/// by one token only.
pub async fn a_token_is_found_by_its_raw_token_and_held_once<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let found = s.by_secret(&t.secret).await.unwrap().unwrap();
    assert_eq!(found.value.id, t.id);
    assert!(
        s.by_secret(&token("cust-1").secret)
            .await
            .unwrap()
            .is_none(),
        "another raw token finds nothing"
    );
    let twin = fixtures::token_with("cust-2", t.secret.expose());
    assert!(matches!(
        commit(&*s, changes::tokens(vec![Write::insert(twin)])).await,
        Err(StoreError::Conflict(_))
    ));
    let old = h.token_key();
    let new = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let found = async |store: Arc<H::Store>| {
        let token = store.by_secret(&t.secret).await.unwrap().unwrap();
        token.value.id
    };
    let rotated = h.reopen_with_keys(new, Some(&old)).await;
    assert_eq!(
        found(rotated.clone()).await,
        t.id,
        "found during a rotation"
    );
    h.rotate(&rotated).await;
    let only_new = h.reopen_with_keys(new, None).await;
    assert_eq!(found(only_new).await, t.id, "found with the new key alone");
}
