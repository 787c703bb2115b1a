use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::task::JoinHandle;

use super::*;

/// Bounds a test: a splice that never ends is a failure. Under paused
/// time the hour passes as soon as nothing else can happen.
async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), test)
        .await
        .expect("the test did not end")
}

/// A splice between two in-memory pipes, run on a task; returns the far
/// ends: what the first stream's peer holds, then the second's.
fn spliced(splice: Splice) -> (DuplexStream, DuplexStream, JoinHandle<Spliced>) {
    let (a_far, a_near) = duplex(64 * 1024);
    let (b_near, b_far) = duplex(64 * 1024);
    (a_far, b_far, tokio::spawn(splice.run(a_near, b_near)))
}

/// The side that closes first sends `hello` and shuts down; the other
/// still answers after it has seen the end of file, and then closes too.
async fn half_close(closing_first: Direction) {
    let (mut a, mut b, task) = spliced(Splice::new());
    let (closer, other) = match closing_first {
        Direction::AToB => (&mut a, &mut b),
        Direction::BToA => (&mut b, &mut a),
    };
    closer.write_all(b"hello").await.unwrap();
    closer.shutdown().await.unwrap();
    let mut heard = Vec::new();
    other.read_to_end(&mut heard).await.unwrap();
    assert_eq!(heard, b"hello");

    other.write_all(b"and a longer answer").await.unwrap();
    other.shutdown().await.unwrap();
    let mut answer = Vec::new();
    closer.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"and a longer answer");

    let spliced = task.await.unwrap();
    assert!(
        matches!(spliced.ended, Ended::Closed),
        "{:?}",
        spliced.ended
    );
    let (first, second) = match closing_first {
        Direction::AToB => (spliced.a_to_b, spliced.b_to_a),
        Direction::BToA => (spliced.b_to_a, spliced.a_to_b),
    };
    assert_eq!((first, second), (5, 19));
}

#[tokio::test]
async fn an_end_of_file_from_a_closes_only_the_way_to_b() {
    bounded(half_close(Direction::AToB)).await;
}

#[tokio::test]
async fn an_end_of_file_from_b_closes_only_the_way_to_a() {
    bounded(half_close(Direction::BToA)).await;
}

#[tokio::test]
async fn bytes_are_counted_as_they_pass_not_at_the_end() {
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let seen = counts.clone();
    let splice = Splice::new()
        .buffer_size(1000)
        .on_bytes(move |direction, n| {
            seen[direction as usize].fetch_add(n, Ordering::Relaxed);
        });
    let (mut a, mut b, task) = spliced(splice);
    let sent = vec![7; 100_000];
    let (written, mut received) = (a.write_all(&sent), vec![0; sent.len()]);
    let (written, read) = tokio::join!(written, b.read_exact(&mut received));
    written.unwrap();
    read.unwrap();
    b.write_all(b"ok").await.unwrap();
    a.read_exact(&mut [0; 2]).await.unwrap();
    // The splice still runs: neither side has closed.
    assert!(!task.is_finished());
    assert_eq!(counts[0].load(Ordering::Relaxed), 100_000);
    assert_eq!(counts[1].load(Ordering::Relaxed), 2);

    drop((a, b));
    let spliced = bounded(task).await.unwrap();
    assert_eq!((spliced.a_to_b, spliced.b_to_a), (100_000, 2));
}

#[tokio::test(start_paused = true)]
async fn a_quiet_splice_ends_at_the_idle_limit_and_closes_both() {
    let idle = Duration::from_secs(30);
    let (mut a, mut b, task) = spliced(Splice::new().idle_timeout(idle));
    let start = Instant::now();
    let spliced = bounded(task).await.unwrap();
    assert!(matches!(spliced.ended, Ended::Idle(limit) if limit == idle));
    assert_eq!(start.elapsed(), idle);
    assert_eq!(a.read(&mut [0; 8]).await.unwrap(), 0);
    assert_eq!(b.read(&mut [0; 8]).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_byte_either_way_pushes_the_idle_limit_back() {
    let idle = Duration::from_secs(30);
    let (mut a, mut b, task) = spliced(Splice::new().idle_timeout(idle));
    let start = Instant::now();
    let step = Duration::from_secs(20);
    tokio::time::sleep(step).await;
    a.write_all(b"x").await.unwrap();
    b.read_exact(&mut [0; 1]).await.unwrap();
    tokio::time::sleep(step).await;
    b.write_all(b"y").await.unwrap();
    a.read_exact(&mut [0; 1]).await.unwrap();
    let spliced = bounded(task).await.unwrap();
    assert!(matches!(spliced.ended, Ended::Idle(_)));
    assert_eq!(start.elapsed(), step * 2 + idle);
}

#[tokio::test]
async fn a_write_to_a_side_that_went_away_fails_that_way() {
    let (mut a, b, task) = spliced(Splice::new());
    drop(b);
    a.write_all(b"into the void").await.unwrap();
    let spliced = bounded(task).await.unwrap();
    match spliced.ended {
        Ended::Failed { direction, error } => {
            assert_eq!(direction, Direction::AToB);
            assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        }
        ended => panic!("ended {ended:?}"),
    }
}

#[test]
fn the_buffer_size_stays_in_its_range() {
    assert_eq!(Splice::new().buffer_size(0).buffer_size, 1);
    assert_eq!(
        Splice::new().buffer_size(usize::MAX).buffer_size,
        MAX_BUFFER
    );
    assert_eq!(Splice::new().buffer_size, DEFAULT_BUFFER);
}

#[tokio::test]
async fn a_direction_grows_its_buffer_once_a_read_fills_it() {
    let (mut writer, mut from) = duplex(64 * 1024);
    let (mut to, mut reader) = duplex(64 * 1024);
    let mut half = Half::new(DEFAULT_BUFFER, Direction::AToB, None);
    let mut copy = async |half: &mut Half| {
        poll_fn(|cx| {
            let _ = half.poll_copy(cx, &mut from, &mut to, &mut false);
            Poll::Ready(())
        })
        .await;
    };
    writer.write_all(&[1; 100]).await.unwrap();
    copy(&mut half).await;
    assert_eq!(half.buf.len(), FIRST_BUFFER, "a short read grew it");
    writer.write_all(&[2; 20_000]).await.unwrap();
    copy(&mut half).await;
    assert_eq!(half.buf.len(), DEFAULT_BUFFER);
    let mut copied = vec![0; 20_100];
    reader.read_exact(&mut copied).await.unwrap();
    assert!(copied[..100].iter().all(|&b| b == 1) && copied[100..].iter().all(|&b| b == 2));
}
