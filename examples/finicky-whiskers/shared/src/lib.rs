//! What the Finicky Whiskers components share: the four foods, the sequence of requested foods a
//! game's seed gives (the page computes the same in `static/game.js`), the game record `session`
//! stores, the key names in the `default` store, and checks of what comes from the network.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// The foods the cat asks for, in the order of the page's buttons.
pub const FOODS: [&str; 4] = ["chicken", "fish", "beef", "veg"];

/// Default game length, and the lengths a page may ask for (`/?seconds=5`).
pub const DEFAULT_SECONDS: u32 = 30;
pub const MIN_SECONDS: u32 = 1;
pub const MAX_SECONDS: u32 = 120;

/// A click that reaches the server this long after the game's end still counts (the network and the
/// page's own timer are not exact); later ones are counted as `late`, never as a score.
pub const GRACE_MS: u64 = 1500;

/// Morsel events are published on `fw.morsel.<game>`; `tally` subscribes to `fw.morsel.*`.
pub const SUBJECT_PREFIX: &str = "fw.morsel.";

/// The food requested at position `index` of the game with `seed`: a 32-bit integer hash of both
/// (the same integer operations as `foodAt` in `static/game.js`).
pub fn food_at(seed: u32, index: u32) -> &'static str {
    let mut x = seed ^ index.wrapping_mul(0x9E37_79B9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    FOODS[(x % 4) as usize]
}

/// What `session` stores under [`game_key`] when a game starts.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Game {
    pub seed: u32,
    /// Start, in milliseconds since the Unix epoch (the host's wall clock).
    pub start_ms: u64,
    pub seconds: u32,
    /// Given to the player who started the game (and to nobody else: the leaderboard lists game
    /// ids, never tokens); a submission to the leaderboard must carry it.
    #[serde(default)]
    pub token: String,
}

impl Game {
    pub fn end_ms(&self) -> u64 {
        self.start_ms + u64::from(self.seconds) * 1000
    }

    pub fn parse(bytes: &[u8]) -> Result<Game, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("corrupt game record: {e}"))
    }
}

/// A morsel event: what `morsel` publishes and `tally` consumes.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Morsel {
    pub game: String,
    /// The page's click number in this game (0, 1, 2, …): one event per click, so a redelivered
    /// event is recognised by it.
    pub click: u32,
    /// Which request of the sequence the click answered.
    pub index: u32,
    pub food: String,
    /// When `morsel` received the click (ms since the Unix epoch).
    pub at_ms: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A game id is 16 lower-case hex digits (what `session` makes).
pub fn check_game_id(id: &str) -> Result<(), String> {
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("bad game id {:?}: expected 16 hex digits", truncate(id, 40)))
    }
}

pub fn check_food(food: &str) -> Result<(), String> {
    if FOODS.contains(&food) { Ok(()) } else { Err(format!("unknown food {:?}: one of {}", truncate(food, 40), FOODS.join(", "))) }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

// Keys of the `default` store.
pub fn game_key(game: &str) -> String {
    format!("fw:game:{game}")
}
/// A game's tally is kept in this many records (shards, by click number), so the events of one
/// game, handled at once by many instances, rarely update the same record.
pub const SHARDS: u32 = 16;

/// Shard `shard` of a game's [`Tally`].
pub fn tally_key(game: &str, shard: u32) -> String {
    format!("fw:{game}:tally:{shard}")
}

/// The shard that counts click `click`.
pub fn shard_of(click: u32) -> u32 {
    click % SHARDS
}

/// The click that scored request `index` of a game (the first correct click to claim it).
pub fn hit_key(game: &str, index: u32) -> String {
    format!("fw:{game}:hit:{index}")
}
pub const LEADERBOARD_KEY: &str = "fw:leaderboard";

/// What `tally` has counted of one shard of a game (or, summed, of the game), in one record updated
/// by compare-and-swap: a click is counted in the same write that marks it counted, so a delivery
/// that fails before its write leaves nothing behind (its redelivery counts it), and one after it
/// only adds a `duplicate`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Tally {
    pub correct: i64,
    pub wrong: i64,
    pub late: i64,
    pub duplicate: i64,
    /// Clicks counted (`correct + wrong + late`).
    pub processed: i64,
    /// The click numbers counted.
    pub clicks: BTreeSet<u32>,
}

impl Tally {
    /// The record as stored; none yet is an empty tally.
    pub fn parse(bytes: Option<&[u8]>) -> Result<Tally, String> {
        match bytes {
            None => Ok(Tally::default()),
            Some(b) => serde_json::from_slice(b).map_err(|e| format!("corrupt tally: {e}")),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of integers and sets of integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Counts `morsel`, whose [`verdict`] is `verdict`, and says how: the verdict, or `duplicate`.
    pub fn count(&mut self, morsel: &Morsel, verdict: Verdict) -> &'static str {
        if !self.clicks.insert(morsel.click) {
            self.duplicate += 1;
            return "duplicate";
        }
        self.processed += 1;
        match verdict {
            Verdict::Late => self.late += 1,
            Verdict::Correct => self.correct += 1,
            Verdict::Wrong => self.wrong += 1,
        }
        verdict.name()
    }

    /// The game's tally: its shards added up.
    pub fn sum(shards: impl IntoIterator<Item = Tally>) -> Tally {
        shards.into_iter().fold(Tally::default(), |mut all, shard| {
            all.correct += shard.correct;
            all.wrong += shard.wrong;
            all.late += shard.late;
            all.duplicate += shard.duplicate;
            all.processed += shard.processed;
            all.clicks.extend(shard.clicks);
            all
        })
    }
}

/// How a click counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Correct,
    Wrong,
    Late,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
            Verdict::Late => "late",
        }
    }
}

/// Whether a click could score: it came within the game's window and clicked the requested food.
/// (It scores only if it is also the first to claim its request: see `tally`.)
pub fn could_score(game: &Game, morsel: &Morsel) -> Result<(), Verdict> {
    if morsel.at_ms < game.start_ms || morsel.at_ms > game.end_ms() + GRACE_MS {
        Err(Verdict::Late)
    } else if morsel.food != food_at(game.seed, morsel.index) {
        Err(Verdict::Wrong)
    } else {
        Ok(())
    }
}

/// A query-string parameter (no percent-decoding needed: game ids are hex).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// One row of the top-10 list (`fw:leaderboard` holds a JSON array of them, best first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Entry {
    pub game: String,
    pub name: String,
    pub score: i64,
    pub wrong: i64,
    /// When it was submitted: the earlier of two equal scores ranks first.
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_counts_once_and_shards_add_up() {
        let game = Game { seed: 7, start_ms: 1_000, seconds: 5, token: String::new() };
        let click = |click, index, at_ms| Morsel { game: "g".into(), click, index, food: food_at(7, index).into(), at_ms };
        assert_eq!(could_score(&game, &click(0, 0, 1_500)), Ok(()));
        assert_eq!(could_score(&game, &click(2, 1, 6_000 + GRACE_MS + 1)), Err(Verdict::Late));
        assert_eq!(could_score(&game, &click(3, 1, 999)), Err(Verdict::Late), "before the start");
        let mut wrong_food = click(4, 1, 2_000);
        wrong_food.food = FOODS.iter().find(|f| **f != food_at(7, 1)).copied().unwrap_or_default().into();
        assert_eq!(could_score(&game, &wrong_food), Err(Verdict::Wrong));

        let (mut even, mut odd) = (Tally::default(), Tally::default());
        assert_eq!(even.count(&click(0, 0, 1_500), Verdict::Correct), "correct");
        assert_eq!(even.count(&click(0, 0, 1_500), Verdict::Correct), "duplicate", "a redelivery");
        assert_eq!(odd.count(&click(1, 0, 1_600), Verdict::Wrong), "wrong");
        assert_eq!(even.count(&click(2, 1, 9_000), Verdict::Late), "late");
        let all = Tally::sum([even.clone(), odd]);
        assert_eq!((all.correct, all.wrong, all.late, all.duplicate, all.processed), (1, 1, 1, 1, 3));
        assert_eq!(Tally::parse(Some(&even.to_bytes())), Ok(even));
        assert_eq!(Tally::parse(None), Ok(Tally::default()));
        assert!(Tally::parse(Some(b"{")).is_err());
        assert_eq!((shard_of(3), shard_of(SHARDS + 3)), (3, 3));
    }

    #[test]
    fn sequence_is_deterministic_and_uses_every_food() {
        // (That game.js's `foodAt` gives the same sequence is checked by the browser test.)
        let foods: Vec<_> = (0..8).map(|i| food_at(12345, i)).collect();
        assert_ne!(foods, (0..8).map(|i| food_at(12346, i)).collect::<Vec<_>>(), "another seed, another game");
        // All four foods come up over a game.
        for food in FOODS {
            assert!((0..64).any(|i| food_at(99, i) == food), "{food}");
        }
    }
}
