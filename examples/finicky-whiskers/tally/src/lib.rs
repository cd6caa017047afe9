//! Subscribed to `fw.morsel.*`: one fresh instance per morsel event. Checks the clicked food
//! against the one the game's seed requested at that index, and the click's time against the game's
//! window (its length plus a small grace), then counts it with atomic increments in the `default`
//! store: `fw:<game>:correct`, `wrong` or `late`, and last `processed`.
//!
//! Delivery can repeat (JetStream redelivers a message whose ack was lost), so each click counts
//! once: `fw:<game>:click:<n>` is incremented first, and a delivery that does not make it 1 only
//! bumps `duplicate`. A request of the sequence scores once too (`fw:<game>:hit:<index>`), however
//! many clicks claim it.

mod bindings {
    wit_bindgen::generate!({ world: "tally", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::messaging::types::{Error, Message};
use finicky_shared::{GRACE_MS, Game, Morsel, check_food, check_game_id, click_key, counter_key, food_at, game_key, hit_key};

struct Tally;

fn kv<T>(r: Result<T, store::Error>) -> Result<T, Error> {
    r.map_err(|e| Error::Other(format!("key-value: {e:?}")))
}

impl Guest for Tally {
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
        let game = match Game::parse(&record) {
            Ok(g) => g,
            Err(e) => {
                println!("game {}: {e}", morsel.game);
                return Ok(());
            }
        };
        let id = &morsel.game;
        if kv(atomics::increment(&bucket, &click_key(id, morsel.click), 1))? != 1 {
            kv(atomics::increment(&bucket, &counter_key(id, "duplicate"), 1))?;
            println!("game {id}: click {} already counted", morsel.click);
            return Ok(());
        }
        let outcome = if morsel.at_ms < game.start_ms || morsel.at_ms > game.end_ms() + GRACE_MS {
            "late"
        } else if morsel.food == food_at(game.seed, morsel.index)
            && kv(atomics::increment(&bucket, &hit_key(id, morsel.index), 1))? == 1
        {
            "correct"
        } else {
            "wrong"
        };
        kv(atomics::increment(&bucket, &counter_key(id, outcome), 1))?;
        // Last: once `processed` is N, the counters of N clicks are all in place.
        kv(atomics::increment(&bucket, &counter_key(id, "processed"), 1))?;
        Ok(())
    }
}

bindings::export!(Tally with_types_in bindings);
