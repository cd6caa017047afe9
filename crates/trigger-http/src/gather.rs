//! A WASI 0.3 response's body, gathered before its head goes out.
//!
//! A WASI 0.3 handler returns its response first and writes the body afterwards, from a task of
//! its own. Handing hyper the head at once sends it alone: hyper finds no body frame yet, flushes
//! the head, and writes the body in a second `write`, which wakes the client twice. So the host
//! first lets the store's event loop run the guest for a few rounds and gathers what the guest
//! writes meanwhile: a body that ends within them (almost every small response) goes out whole with
//! its head, in one write, and the instance ends at once instead of waiting for hyper to finish with
//! the body. A body that is large, or whose guest waits on something (an outbound call, a timer),
//! streams as before, behind what was gathered.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::handler::Body;

/// Bodies up to this size are gathered whole; beyond it the rest streams.
const MAX_GATHERED_BYTES: usize = 64 << 10;

/// Rounds of the store's event loop in a row without a new frame before the head goes out alone.
/// The guest's body writer needs one or two (its write, then its end).
const IDLE_ROUNDS: u32 = 3;

/// What the guest wrote of its body while the host waited.
pub(crate) enum Gathered {
    /// The whole body (its data and trailers).
    Whole(Body),
    /// The beginning of a body still being written: the frames gathered, then the rest.
    Streaming(Body),
    /// The body failed before anything was sent (its length did not match `content-length`, the
    /// guest reported an error).
    Failed(wasmtime_wasi_http::Error),
}

/// Reads `body` while the guest keeps producing it (see the module's comment). Must run inside the
/// store's event loop (`run_concurrent`): each round it yields lets the loop run the guest's tasks.
pub(crate) async fn gather(mut body: Body) -> Gathered {
    let mut frames = VecDeque::new();
    let mut size = 0usize;
    let mut idle = 0;
    while idle < IDLE_ROUNDS && size <= MAX_GATHERED_BYTES {
        match next_frame_or_round(&mut body).await {
            Some(Some(Ok(frame))) => {
                size += frame.data_ref().map_or(0, Bytes::len);
                frames.push_back(frame);
                idle = 0;
            }
            Some(Some(Err(err))) => return Gathered::Failed(err),
            Some(None) => return Gathered::Whole(Whole::from_frames(frames).boxed_unsync()),
            None => idle += 1,
        }
    }
    Gathered::Streaming(Prefixed { gathered: frames, rest: body }.boxed_unsync())
}

/// The body's next frame if it has one now or after one round of the event loop; `None` if it
/// still has none.
async fn next_frame_or_round(body: &mut Body) -> Option<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
    let mut waited = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
            return Poll::Ready(Some(frame));
        }
        if waited {
            return Poll::Ready(None);
        }
        // Polled again right away: in between, the store's event loop runs whatever guest work is
        // ready (`poll_until` in wasmtime's concurrent.rs), and the tokio runtime its other tasks.
        waited = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// A body held entirely in memory: its data in one piece, then its trailers.
struct Whole {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Whole {
    fn from_frames(frames: VecDeque<Frame<Bytes>>) -> Whole {
        let mut chunks = Vec::new();
        let mut trailers = None;
        for frame in frames {
            match frame.into_data() {
                Ok(data) => chunks.push(data),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        let data = match chunks.len() {
            0 => None,
            1 => chunks.pop(),
            _ => Some(chunks.iter().fold(BytesMut::new(), |mut all, chunk| {
                all.extend_from_slice(chunk);
                all
            }).freeze()),
        };
        Whole { data: data.filter(|data| !data.is_empty()), trailers }
    }
}

impl http_body::Body for Whole {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |data| data.len() as u64))
    }
}

/// The frames gathered so far, then the rest of the body as the guest writes it.
struct Prefixed {
    gathered: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = self.gathered.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.gathered.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let gathered: u64 = self.gathered.iter().filter_map(Frame::data_ref).map(|data| data.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(gathered));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(gathered));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_of(frames: Vec<Frame<Bytes>>) -> Body {
        let stream = futures::stream::iter(frames.into_iter().map(Ok));
        http_body_util::StreamBody::new(stream).boxed_unsync()
    }

    /// A body that is never ready: a guest waiting on something.
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_finished_body_is_gathered_whole_with_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "42".parse().unwrap());
        let frames = vec![Frame::data(Bytes::from("hello ")), Frame::data(Bytes::from("world")), Frame::trailers(trailers)];
        let Gathered::Whole(body) = gather(body_of(frames)).await else { panic!("not gathered whole") };
        assert_eq!(body.size_hint().exact(), Some(11));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().and_then(|t| t.get("x-sum")).unwrap(), "42");
        assert_eq!(collected.to_bytes(), "hello world");
    }

    #[tokio::test]
    async fn an_empty_body_is_whole_and_ended() {
        let Gathered::Whole(body) = gather(body_of(Vec::new())).await else { panic!("not gathered whole") };
        assert!(body.is_end_stream());
    }

    /// A body whose writer needs `polls` polls before its frames: a guest that writes a few
    /// rounds of the event loop after returning its response.
    struct Delayed {
        polls: u32,
        rest: Body,
    }

    impl http_body::Body for Delayed {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.polls > 0 {
                self.polls -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Pin::new(&mut self.rest).poll_frame(cx)
        }
    }

    #[tokio::test]
    async fn a_body_written_a_round_later_is_still_gathered_whole() {
        let body = Delayed { polls: 2, rest: body_of(vec![Frame::data(Bytes::from("late"))]) }.boxed_unsync();
        let Gathered::Whole(body) = gather(body).await else { panic!("not gathered whole") };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "late");
    }

    #[tokio::test]
    async fn a_body_slower_than_the_idle_rounds_streams_and_loses_nothing() {
        let body = Delayed { polls: 2 * IDLE_ROUNDS + 1, rest: body_of(vec![Frame::data(Bytes::from("slow"))]) }.boxed_unsync();
        let Gathered::Streaming(body) = gather(body).await else { panic!("a slow body must stream") };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "slow");
    }

    #[tokio::test]
    async fn a_stalled_body_streams_after_the_idle_rounds() {
        let body = Prefixed { gathered: VecDeque::from([Frame::data(Bytes::from("head "))]), rest: Stalled.boxed_unsync() }.boxed_unsync();
        let Gathered::Streaming(mut body) = gather(body).await else { panic!("a stalled body must stream") };
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "head ");
        assert!(!body.is_end_stream());
    }

    #[tokio::test]
    async fn a_large_body_streams_once_past_the_limit() {
        let big = Bytes::from(vec![b'x'; MAX_GATHERED_BYTES + 1]);
        let body = Prefixed { gathered: VecDeque::from([Frame::data(big)]), rest: Stalled.boxed_unsync() }.boxed_unsync();
        assert!(matches!(gather(body).await, Gathered::Streaming(_)));
    }

    #[tokio::test]
    async fn a_failing_body_is_reported_before_the_head_goes_out() {
        let stream = futures::stream::iter(vec![Err(wasmtime_wasi_http::Error::HttpResponseBodySize(Some(3)))]);
        let body = http_body_util::StreamBody::new(stream).boxed_unsync();
        assert!(matches!(gather(body).await, Gathered::Failed(_)));
    }
}
