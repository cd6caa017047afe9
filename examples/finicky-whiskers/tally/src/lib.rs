//! Subscribed to `fw.morsel.*`: one fresh instance per morsel event. Checks the clicked food
//! against the one the game's seed requested at that index, and the click's time against the game's
//! window (its length plus a small grace), and counts it in the game's tally (`fw:<game>:tally` in
//! the `default` store).
//!
//! Delivery can repeat (JetStream redelivers a message whose handler failed or whose ack was lost),
//! and many instances handle one game's events at once. So:
//! - a request of the sequence is claimed by writing the claiming click's number into
//!   `fw:<game>:hit:<index>` with compare-and-swap, only if it is empty: the first correct click
//!   scores, later ones are `wrong`, and a redelivered click finds its own number (the same verdict);
//! - the verdict is counted in shard `click % 16` of the tally (`fw:<game>:tally:<shard>`), one
//!   record holding its counts and the click numbers counted, updated with compare-and-swap (redone,
//!   after a short random pause, on a conflict): a click is counted in the same write that records
//!   it, so a delivery that fails before that write leaves nothing half-counted and its redelivery
//!   counts it; a delivery after it only adds to `duplicate`. Shards keep concurrent events of a
//!   game from retrying on one record.
//!
//! So every click is counted exactly once.

mod bindings {
    wit_bindgen::generate!({ world: "tally", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use bindings::wasi::keyvalue::store::{self, Bucket};
use bindings::wasi::messaging::types::{Error, Message};
use finicky_shared::{Game, Morsel, Tally, Verdict, check_food, check_game_id, could_score, game_key, hit_key, shard_of, tally_key};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Compare-and-swap rounds before the event is failed (and redelivered).
const MAX_ROUNDS: usize = 200;

struct TallyHandler;

fn kv<T>(r: Result<T, store::Error>) -> Result<T, Error> {
    r.map_err(|e| Error::Other(format!("key-value: {e:?}")))
}

impl Guest for TallyHandler {
    fn handle(message: Message) -> Result<(), Error> {
        // A malformed event can never succeed: it is logged and acked, not redelivered forever.
        let morsel: Morsel = match serde_json::from_slice(&message.data()) {
            Ok(m) => m,
            Err(e) => {
                println!("dropping a malformed morsel event: {e}");
                return Ok(());
            }
        };
        if let Err(e) = check_game_id(&morsel.game).and_then(|()| check_food(&morsel.food)) {
            println!("dropping a morsel event: {e}");
            return Ok(());
        }
        let bucket = kv(store::open("default"))?;
        let Some(record) = kv(bucket.get(&game_key(&morsel.game)))? else {
            println!("dropping a morsel for unknown game {}", morsel.game);
            return Ok(());
        };
        match Game::parse(&record) {
            Ok(game) => count(&bucket, &game, &morsel),
            Err(e) => {
                println!("game {}: {e}", morsel.game);
                Ok(())
            }
        }
    }
}

/// Judges the click and counts it in its shard of the game's tally.
fn count(bucket: &Bucket, game: &Game, morsel: &Morsel) -> Result<(), Error> {
    let verdict = match could_score(game, morsel) {
        Ok(()) if claim(bucket, morsel)? => Verdict::Correct,
        Ok(()) => Verdict::Wrong,
        Err(verdict) => verdict,
    };
    let key = tally_key(&morsel.game, shard_of(morsel.click));
    let outcome = swap_until_done(bucket, &key, |current| {
        let mut tally = Tally::parse(current).map_err(Error::Other)?;
        let outcome = tally.count(morsel, verdict);
        Ok((Some(tally.to_bytes()), outcome))
    })?;
    if outcome == "duplicate" {
        println!("game {}: click {} already counted", morsel.game, morsel.click);
    }
    Ok(())
}

/// Claims the click's request for it: true if the request was free or is already this click's.
fn claim(bucket: &Bucket, morsel: &Morsel) -> Result<bool, Error> {
    let mine = morsel.click.to_string();
    swap_until_done(bucket, &hit_key(&morsel.game, morsel.index), |current| match current {
        None => Ok((Some(mine.as_bytes().to_vec()), true)),
        Some(holder) => Ok((None, holder == mine.as_bytes())),
    })
}

/// Compare-and-swap on `key`: `update` sees the current value and says what to write (`None`:
/// nothing) and what to answer; a conflicting writer makes the round start again on what it left,
/// after a random pause that grows with the rounds (so a crowd of instances spreads out).
fn swap_until_done<T>(bucket: &Bucket, key: &str, update: impl Fn(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), Error>) -> Result<T, Error> {
    let mut cas = kv(Cas::new(bucket, key))?;
    for round in 0..MAX_ROUNDS {
        let (write, answer) = update(kv(cas.current())?.as_deref())?;
        let Some(bytes) = write else { return Ok(answer) };
        match atomics::swap(cas, &bytes) {
            Ok(()) => return Ok(answer),
            Err(CasError::CasFailed(latest)) => cas = latest,
            Err(CasError::StoreError(e)) => return Err(Error::Other(format!("key-value: {e:?}"))),
        }
        std::thread::sleep(pause(round));
    }
    Err(Error::Other(format!("`{key}` stayed busy for {MAX_ROUNDS} rounds")))
}

/// Up to 2^min(round, 5) ms, at random.
fn pause(round: usize) -> Duration {
    let ceiling = 1u64 << round.min(5);
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    Duration::from_micros(random % (ceiling * 1000))
}

bindings::export!(TallyHandler with_types_in bindings);
