//! What travels to and from Redis: channel messages (bare payloads or envelopes), header lines,
//! `PSUBSCRIBE` globs, stream entries and the replies of the stream commands.

use super::{ENVELOPE_MAGIC, Entry};
use crate::{Message, MessagingError};
use bytes::Bytes;
use redis::Value;

/// The `PSUBSCRIBE` glob for a NATS pattern, or `None` for a pattern without wildcards. The glob may
/// match more (`*` spans dots); arrivals are checked with [`subject::matches`].
pub(super) fn glob(pattern: &str) -> Option<String> {
    if !pattern.split('.').any(|token| token == "*" || token == ">") {
        return None;
    }
    let tokens: Vec<String> = pattern
        .split('.')
        .map(|token| match token {
            "*" | ">" => "*".to_string(),
            literal => literal.chars().flat_map(|c| if matches!(c, '*' | '?' | '[' | ']' | '\\') { vec!['\\', c] } else { vec![c] }).collect(),
        })
        .collect();
    Some(tokens.join("."))
}

/// Header names are printable ASCII without `:`; values are one line (as NATS requires).
pub(super) fn check_headers(headers: &[(String, String)]) -> Result<(), MessagingError> {
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(MessagingError::Other(format!("invalid header name `{name}`: use printable ASCII without `:`")));
        }
        if value.contains(['\r', '\n']) {
            return Err(MessagingError::Other(format!("invalid value for header `{name}`: it must be one line")));
        }
    }
    Ok(())
}

/// `name: value` lines.
pub(super) fn header_lines(headers: &[(String, String)]) -> String {
    headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect()
}

fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.strip_prefix(' ').unwrap_or(value).to_string()))
        .collect()
}

/// What a publish sends on the channel: the bare payload, or an envelope when there are headers
/// or a reply subject.
pub(super) fn envelope(message: &Message, headers: &str) -> Vec<u8> {
    if message.headers.is_empty() && message.reply_to.is_none() {
        return message.payload.to_vec();
    }
    let mut out = Vec::with_capacity(message.payload.len() + headers.len() + 64);
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.extend_from_slice(message.subject.as_bytes());
    if let Some(reply) = &message.reply_to {
        out.push(b' ');
        out.extend_from_slice(reply.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&message.payload);
    out
}

/// A message that arrived on `channel`: an envelope, or a bare payload.
pub(super) fn from_channel(channel: &str, bytes: &[u8]) -> Message {
    parse_envelope(bytes).unwrap_or_else(|| Message::new(channel, Bytes::copy_from_slice(bytes)))
}

fn parse_envelope(bytes: &[u8]) -> Option<Message> {
    let rest = bytes.strip_prefix(ENVELOPE_MAGIC)?;
    let first_end = rest.iter().position(|b| *b == b'\n')?;
    let first = std::str::from_utf8(&rest[..first_end]).ok()?;
    let mut words = first.split(' ');
    let subject = words.next().filter(|s| !s.is_empty())?.to_string();
    let reply_to = words.next().map(str::to_string);
    let rest = &rest[first_end + 1..];
    let headers_end = if rest.first() == Some(&b'\n') { 0 } else { rest.windows(2).position(|w| w == b"\n\n")? + 1 };
    let headers = parse_header_lines(std::str::from_utf8(&rest[..headers_end]).ok()?);
    let payload = Bytes::copy_from_slice(&rest[headers_end + 1..]);
    Some(Message { subject, payload, reply_to, headers })
}

/// The message of a stream entry.
pub(super) fn entry_message(pattern: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Message {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.as_slice());
    let text = |name: &str| field(name).map(|v| String::from_utf8_lossy(v).into_owned());
    Message {
        // An entry another program added without a subject is on the pattern it was read for.
        subject: text("subject").filter(|s| !s.is_empty()).unwrap_or_else(|| pattern.to_string()),
        payload: Bytes::copy_from_slice(field("payload").unwrap_or_default()),
        reply_to: text("reply").filter(|s| !s.is_empty()),
        headers: text("headers").map(|h| parse_header_lines(&h)).unwrap_or_default(),
    }
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// `XREADGROUP`'s reply: `[[stream, entries]]` (or nil when nothing came).
pub(super) fn read_entries(reply: &Value) -> Vec<Entry> {
    match reply {
        Value::Map(streams) => streams.iter().flat_map(|(_, entries)| parse_entries(entries)).collect(),
        _ => items(reply).into_iter().flat_map(|stream| items(stream).get(1).map(|entries| parse_entries(entries)).unwrap_or_default()).collect(),
    }
}

/// `[[id, [field, value, …]], …]`; entries deleted meanwhile come as `[id, nil]` and are skipped.
pub(super) fn parse_entries(entries: &Value) -> Vec<Entry> {
    items(entries)
        .into_iter()
        .filter_map(|entry| {
            let parts = items(entry);
            let id = String::from_utf8(bytes_of(parts.first()?)?).ok()?;
            let flat = items(parts.get(1)?);
            if flat.is_empty() {
                return None;
            }
            let fields = flat.chunks(2).filter_map(|pair| Some((bytes_of(pair.first()?)?, bytes_of(pair.get(1)?)?))).collect();
            Some((id, fields))
        })
        .collect()
}

/// The delivery count in `XPENDING key group id id 1`'s reply.
pub(super) fn delivery_count(reply: &Value) -> Option<u32> {
    let first = items(reply).into_iter().next()?;
    match items(first).get(3)? {
        Value::Int(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// `(name, pending, idle ms)` of each consumer in `XINFO CONSUMERS`' reply.
pub(super) fn consumer_infos(reply: &Value) -> Vec<(String, i64, i64)> {
    items(reply)
        .into_iter()
        .filter_map(|consumer| {
            let flat = items(consumer);
            let get = |key: &str| flat.chunks(2).find(|pair| pair.first().and_then(|k| bytes_of(k)).is_some_and(|k| k == key.as_bytes())).and_then(|pair| pair.get(1).copied());
            let name = String::from_utf8(bytes_of(get("name")?)?).ok()?;
            let number = |key: &str| match get(key) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            };
            Some((name, number("pending")?, number("idle")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_escape_literals_and_widen_wildcards() {
        assert_eq!(glob("orders.created"), None);
        assert_eq!(glob("orders.*").as_deref(), Some("orders.*"));
        assert_eq!(glob("orders.>").as_deref(), Some("orders.*"));
        assert_eq!(glob("a[1]?.*").as_deref(), Some("a\\[1\\]\\?.*"));
    }

    #[test]
    fn envelopes_round_trip_and_bare_payloads_pass() {
        let message = Message {
            subject: "orders.created".into(),
            payload: Bytes::from_static(b"body\n\nwith blank lines"),
            reply_to: Some("_INBOX.x.1".into()),
            headers: vec![("trace".into(), "t: 1".into()), ("k".into(), "".into())],
        };
        let bytes = envelope(&message, &header_lines(&message.headers));
        assert_eq!(from_channel("ignored", &bytes), message);
        let no_headers = Message { headers: vec![], ..message.clone() };
        assert_eq!(from_channel("ignored", &envelope(&no_headers, "")), no_headers);
        let bare = Message::new("orders.created", "plain");
        assert_eq!(envelope(&bare, ""), b"plain");
        assert_eq!(from_channel("orders.created", b"plain"), bare);
        // Garbage after the magic is a bare payload, not a panic.
        for garbage in [&b"KILN/1 "[..], b"KILN/1 x", b"KILN/1 x\nname: v", b"KILN/1 \n\n"] {
            assert_eq!(from_channel("c", garbage).payload, garbage);
        }
    }

    #[test]
    fn headers_are_checked() {
        assert!(check_headers(&[("ok-name".into(), "a value".into())]).is_ok());
        for bad in [("".to_string(), "v".to_string()), ("a:b".into(), "v".into()), ("a b".into(), "v".into()), ("n".into(), "two\nlines".into())] {
            assert!(check_headers(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
    }
}
