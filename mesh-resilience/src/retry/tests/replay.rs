//! Tests of `ReplayBody` (SEMANTICS RETRY-7).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use mesh_core::BoxError;

use crate::retry::{ReplayBody, ReplayError};

/// A body of scripted frames; `Err` items become errors.
struct Frames(VecDeque<Result<Frame<Bytes>, &'static str>>);

impl Frames {
    fn new(data: &[&'static str], trailers: Option<(&'static str, &'static str)>) -> Self {
        let mut frames: VecDeque<_> = data
            .iter()
            .map(|d| Ok(Frame::data(Bytes::from_static(d.as_bytes()))))
            .collect();
        if let Some((k, v)) = trailers {
            let mut t = HeaderMap::new();
            t.insert(k, v.parse().unwrap());
            frames.push_back(Ok(Frame::trailers(t)));
        }
        Self(frames)
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// A body fed through a channel, to interleave reads.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Channel {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

async fn read_all<B>(body: ReplayBody<B>) -> Result<(Vec<Bytes>, Option<HeaderMap>), BoxError>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    let mut body = body;
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(d) => data.push(d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    Ok((data, trailers))
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn send_and_sync_for_send_bodies() {
    assert_send_sync::<ReplayBody<Full<Bytes>>>();
    assert_send_sync::<ReplayBody<Channel>>();
}

// SEMANTICS RETRY-7: a copy replays the body identically, trailers included.
#[tokio::test]
async fn retry_7_copy_replays_data_and_trailers() {
    let body = ReplayBody::new(Frames::new(&["ab", "cd", "e"], Some(("grpc-x", "1"))), 64);
    let copy = body.try_clone().unwrap();
    let first = read_all(body).await.unwrap();
    assert_eq!(first.0, ["ab", "cd", "e"]);
    assert_eq!(first.1.as_ref().unwrap()["grpc-x"], "1");
    assert!(copy.is_replayable());
    let again = copy.try_clone().unwrap();
    assert_eq!(read_all(copy).await.unwrap(), first);
    assert_eq!(read_all(again).await.unwrap(), first);
}

// SEMANTICS RETRY-7: a copy made part-way continues from the original body, and the
// original then catches up from the buffer.
#[tokio::test]
async fn retry_7_copy_made_midway_continues_the_original() {
    let mut body = ReplayBody::new(Frames::new(&["ab", "cd", "e"], None), 64);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "ab");
    let copy = body.try_clone().unwrap();
    assert_eq!(read_all(copy).await.unwrap().0, ["ab", "cd", "e"]);
    assert_eq!(read_all(body).await.unwrap().0, ["cd", "e"]);
}

// SEMANTICS RETRY-7 (ours): over the cap the body is sent once, no copy can be made, and
// a copy made before the overflow fails instead of sending a truncated body.
#[tokio::test]
async fn retry_7_over_the_cap() {
    let exact = ReplayBody::new(Frames::new(&["abc", "de"], None), 5);
    let copy = exact.try_clone().unwrap();
    assert_eq!(read_all(exact).await.unwrap().0, ["abc", "de"]);
    assert_eq!(
        read_all(copy).await.unwrap().0,
        ["abc", "de"],
        "5 bytes fit a 5-byte cap"
    );

    let mut body = ReplayBody::new(Frames::new(&["abc", "def", "g"], None), 5);
    let early = body.try_clone().unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "abc"
    );
    assert!(body.try_clone().is_some());
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "def"
    );
    assert!(body.try_clone().is_none(), "6 bytes read > cap 5");
    assert!(!body.is_replayable());
    assert_eq!(
        read_all(body).await.unwrap().0,
        ["g"],
        "the original still streams"
    );
    assert!(!early.is_end_stream());
    let err = read_all(early).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<ReplayError>(),
        Some(&ReplayError::BufferDropped)
    );
}

#[tokio::test]
async fn zero_buffer_is_a_pass_through() {
    let body = ReplayBody::new(Full::new(Bytes::from_static(b"hi")), 0);
    assert!(body.try_clone().is_none());
    assert!(!body.is_replayable());
    assert_eq!(body.size_hint().exact(), Some(2));
    assert_eq!(read_all(body).await.unwrap().0, ["hi"]);
}

#[tokio::test]
async fn end_of_stream_and_size_hint() {
    let empty = ReplayBody::new(Full::new(Bytes::new()), 16);
    assert!(empty.is_end_stream());
    let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 16);
    assert!(!body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(5));
    let copy = body.try_clone().unwrap();
    let (data, _) = read_all(body).await.unwrap();
    assert_eq!(data, ["hello"]);
    assert_eq!(copy.size_hint().exact(), Some(5));
    assert!(!copy.is_end_stream());
    let mut copy = copy;
    copy.frame().await.unwrap().unwrap();
    assert!(copy.is_end_stream());
    assert_eq!(copy.size_hint().exact(), Some(0));
    // Trailers are still owed after the data.
    let t = ReplayBody::new(Frames::new(&["x"], Some(("a", "b"))), 16);
    let c = t.try_clone().unwrap();
    read_all(t).await.unwrap();
    let mut c = c;
    c.frame().await.unwrap().unwrap();
    assert!(!c.is_end_stream());
    assert!(c.frame().await.unwrap().unwrap().is_trailers());
    assert!(c.is_end_stream());
    assert!(c.frame().await.is_none());
}

#[tokio::test]
async fn an_inner_error_fails_every_copy() {
    let mut frames = Frames::new(&["ab"], None);
    frames.0.push_back(Err("boom"));
    let body = ReplayBody::new(frames, 64);
    let copy = body.try_clone().unwrap();
    let err = read_all(body).await.unwrap_err();
    assert_eq!(err.to_string(), "boom");
    let err = read_all(copy).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<ReplayError>(),
        Some(&ReplayError::Failed)
    );
}

// Two copies waiting on the original at once are both woken (the body keeps one waker).
#[tokio::test]
async fn concurrent_copies_are_both_woken() {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = ReplayBody::new(Channel(rx), 64);
    let copy = body.try_clone().unwrap();
    let a = tokio::spawn(read_all(body));
    let b = tokio::spawn(read_all(copy));
    for chunk in ["1", "22", "333"] {
        tokio::task::yield_now().await;
        tx.send(Bytes::from_static(chunk.as_bytes())).await.unwrap();
    }
    drop(tx);
    let a = a.await.unwrap().unwrap();
    let b = b.await.unwrap().unwrap();
    assert_eq!(a.0, ["1", "22", "333"]);
    assert_eq!(a, b);
}

#[tokio::test]
async fn empty_bodies_replay_for_free() {
    // RETRY-7: a body that is empty from the start (most GETs) is replayable without a buffer.
    let body = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 1024);
    assert!(body.is_replayable() && body.is_end_stream());
    let copy = body.try_clone().expect("empty bodies always replay");
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.collect().await.unwrap().to_bytes().is_empty());
    assert!(copy.collect().await.unwrap().to_bytes().is_empty());
}
