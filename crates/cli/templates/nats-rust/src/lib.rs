//! A NATS subscriber: counts each message in the `default` key-value store and answers requests
//! with the payload in upper case.

mod bindings {
    wit_bindgen::generate!({ world: "app", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::messaging::request_reply;
use bindings::wasi::messaging::types::{Error, Message};

struct Component;

impl Guest for Component {
    fn handle(message: Message) -> Result<(), Error> {
        let text = String::from_utf8_lossy(&message.data()).into_owned();
        let topic = message.topic().unwrap_or_default();
        println!("{{project-name}} got {topic}: {text}");
        let bucket = store::open("default").map_err(|e| Error::Other(format!("open the store: {e:?}")))?;
        atomics::increment(&bucket, "messages", 1).map_err(|e| Error::Other(format!("count the message: {e:?}")))?;
        let is_request = message.metadata().unwrap_or_default().iter().any(|(key, _)| key == "reply-to");
        if is_request {
            let reply = Message::new(text.to_uppercase().as_bytes());
            request_reply::reply(&message, reply)?;
        }
        Ok(())
    }
}

bindings::export!(Component with_types_in bindings);
