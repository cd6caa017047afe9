//! The NATS benchmark's guest (bench/nats.sh): the least a `wasi:messaging@0.2.0-draft` handler
//! can do. A message with a reply subject (metadata `reply-to`) is answered with an empty message
//! through `request-reply.reply`; any other message is accepted as is. No other imports.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::messaging::request_reply;
use bindings::wasi::messaging::types::{Error, Message};

struct Bench;

impl Guest for Bench {
    fn handle(message: Message) -> Result<(), Error> {
        let wants_reply = message.metadata().is_some_and(|m| m.iter().any(|(k, _)| k == "reply-to"));
        if wants_reply {
            request_reply::reply(&message, Message::new(&[]))?;
        }
        Ok(())
    }
}

bindings::export!(Bench with_types_in bindings);
