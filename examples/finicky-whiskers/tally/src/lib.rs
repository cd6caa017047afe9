//! Subscribed to `fw.morsel.*`: one fresh instance per morsel event. Checks the clicked food
//! against the one the game's seed requested at that index, and the click's time against the game's
//! window (its length plus a small grace), and counts it in the game's tally (`fw:<game>:tally` in
//! the `default` store).
//!
//! Delivery can repeat (JetStream redelivers a message whose handler failed or whose ack was lost).
//! The tally is one record, updated with compare-and-swap (`wasi:keyvalue/atomics` `cas` + `swap`,
//! redone on a conflict), and a click is counted in the same write that records it as counted
//! ([`Tally::count`]): a delivery that fails before that write leaves nothing half-counted and its
//! redelivery counts it; one after it only adds a `duplicate`. So every click is counted exactly once.

mod bindings {
    wit_bindgen::generate!({ world: "tally", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use bindings::wasi::keyvalue::store::{self, Bucket};
use bindings::wasi::messaging::types::{Error, Message};
use finicky_shared::{Game, Morsel, Tally, check_food, check_game_id, game_key, tally_key};

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

/// Counts the click in the game's tally, redoing the update on what a concurrent writer left.
fn count(bucket: &Bucket, game: &Game, morsel: &Morsel) -> Result<(), Error> {
    let mut cas = kv(Cas::new(bucket, &tally_key(&morsel.game)))?;
    for _ in 0..MAX_ROUNDS {
        let mut tally = Tally::parse(kv(cas.current())?.as_deref()).map_err(Error::Other)?;
        let outcome = tally.count(game, morsel);
        match atomics::swap(cas, &tally.to_bytes()) {
            Ok(()) => {
                if outcome == "duplicate" {
                    println!("game {}: click {} already counted", morsel.game, morsel.click);
                }
                return Ok(());
            }
            Err(CasError::CasFailed(latest)) => cas = latest,
            Err(CasError::StoreError(e)) => return Err(Error::Other(format!("key-value: {e:?}"))),
        }
    }
    Err(Error::Other(format!("game {}: the tally stayed busy for {MAX_ROUNDS} rounds", morsel.game)))
}

bindings::export!(TallyHandler with_types_in bindings);
