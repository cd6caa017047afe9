use super::*;
use bindings::wasi::messaging::producer::Host as _;
use bindings::wasi::messaging::request_reply::{Host as _, HostRequestOptions as _};
use bindings::wasi::messaging::types::{HostClient as _, HostMessage as _};
use kiln_messaging::Message;

fn instance(broker: &Broker) -> MessagingInstance {
    MessagingApp::new(broker.clone()).component_state().instance()
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

#[test]
fn metadata_maps_to_headers_and_reply_subject() {
    let mut received = Message::new("orders.created", "x");
    received.headers = vec![("content-type".into(), "application/json".into()), ("trace".into(), "t".into())];
    received.reply_to = Some("_INBOX.1".into());
    let m = GuestMessage::from_broker(&received);
    assert_eq!(m.topic.as_deref(), Some("orders.created"));
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.reply_to(), Some("_INBOX.1"));
    assert!(m.metadata.contains(&("reply-to".to_string(), "_INBOX.1".to_string())));
    let headers = m.headers();
    assert!(!headers.iter().any(|(k, _)| k == "reply-to"), "reply-to is not a header");
    assert_eq!(headers.iter().filter(|(k, _)| k == "content-type").count(), 1);
}

#[tokio::test]
async fn send_request_and_reply_through_the_host_functions() {
    let broker = Broker::in_process();
    let mut i = instance(&broker);
    let client = i.connect("anything".into()).await.unwrap().unwrap();
    let mut sub = broker.subscribe("events.*", None).await.unwrap();

    let m = bindings::wasi::messaging::types::HostMessage::new(&mut i, b"hello".to_vec()).await.unwrap();
    i.set_content_type(borrow(&m), "text/plain".into()).await.unwrap().unwrap();
    i.add_metadata(borrow(&m), "k".into(), "v".into()).await.unwrap().unwrap();
    assert!(i.add_metadata(borrow(&m), "bad:key".into(), "v".into()).await.unwrap().is_err());
    i.send(borrow(&client), "events.one".into(), m).await.unwrap().unwrap();
    let got = sub.next().await.unwrap();
    assert_eq!((&got.payload[..], got.header("k"), got.header("content-type")), (&b"hello"[..], Some("v"), Some("text/plain")));

    // Denied and invalid subjects are errors, never silent successes.
    for (subject, denied) in [("$JS.API.STREAM.DELETE.X", true), ("events.*", false), ("", false), ("a b", false)] {
        let m = bindings::wasi::messaging::types::HostMessage::new(&mut i, vec![]).await.unwrap();
        let err = i.send(borrow(&client), subject.into(), m).await.unwrap().unwrap_err();
        assert_eq!(matches!(err, types::Error::PermissionDenied(_)), denied, "{subject}: {err:?}");
    }

    // Request/reply: a responder that answers through `reply` of another instance.
    let mut service = broker.subscribe("svc", None).await.unwrap();
    let responder_broker = broker.clone();
    tokio::spawn(async move {
        let request = service.next().await.unwrap();
        let mut r = instance(&responder_broker);
        let original = r.push_message(GuestMessage::from_broker(&request)).unwrap();
        let answer = bindings::wasi::messaging::types::HostMessage::new(&mut r, b"pong".to_vec()).await.unwrap();
        r.reply(borrow(&original), answer).await.unwrap().unwrap();
        // A message without a reply subject cannot be replied to.
        let plain = r.push_message(GuestMessage::default()).unwrap();
        let answer = bindings::wasi::messaging::types::HostMessage::new(&mut r, vec![]).await.unwrap();
        assert!(r.reply(borrow(&plain), answer).await.unwrap().is_err());
    });
    let m = bindings::wasi::messaging::types::HostMessage::new(&mut i, b"ping".to_vec()).await.unwrap();
    let replies = i.request(borrow(&client), "svc".into(), borrow(&m), None).await.unwrap().unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(i.data(borrow(&replies[0])).await.unwrap(), b"pong");

    // Nobody listening; and a timeout.
    let err = i.request(borrow(&client), "nobody".into(), borrow(&m), None).await.unwrap().unwrap_err();
    assert!(matches!(err, types::Error::Other(ref s) if s.contains("no responders")), "{err:?}");
    let _silent = broker.subscribe("silent", None).await.unwrap();
    let o = bindings::wasi::messaging::request_reply::HostRequestOptions::new(&mut i).await.unwrap();
    i.set_timeout_ms(borrow(&o), 100).await.unwrap();
    let err = i.request(borrow(&client), "silent".into(), borrow(&m), Some(o)).await.unwrap().unwrap_err();
    assert!(matches!(err, types::Error::Timeout), "{err:?}");
}
