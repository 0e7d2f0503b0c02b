//! Pass-through of the programs' output, one line at a time, each prefixed
//! with `name | `.
//!
//! Readers never wait for supervise's own stdout: lines go to one writer
//! thread through a queue bounded in bytes. When the queue is full (nobody
//! reads supervise's output fast enough) lines are dropped, counted, and the
//! count is reported in the stream once there is room again, so a program
//! never blocks on a full pipe because of a slow log reader.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Bytes queued for writing at most; beyond, lines are dropped.
const QUEUE_BYTES: usize = 256 * 1024;
/// A line longer than this is passed on in pieces.
const MAX_LINE: usize = 8 * 1024;

/// Which of supervise's own streams a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
enum Line {
    Text {
        stream: Stream,
        text: Vec<u8>,
    },
    /// Answered once everything queued before it is written.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The sending side, cloned by every reader.
#[derive(Debug, Clone)]
pub struct Output {
    tx: mpsc::UnboundedSender<Line>,
    queued: Arc<AtomicUsize>,
}

/// The writer thread; [`Writer::finish`] flushes what is queued.
#[derive(Debug)]
pub struct Writer;

/// Starts the writer thread.
pub fn start() -> (Output, Writer) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
    let queued = Arc::new(AtomicUsize::new(0));
    let q = queued.clone();
    std::thread::Builder::new()
        .name("output".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            while let Some(line) = rx.blocking_recv() {
                let (stream, text) = match line {
                    Line::Text { stream, text } => (stream, text),
                    Line::Flush(ack) => {
                        let _ = ack.send(());
                        continue;
                    }
                };
                // A write error (closed stdout) must not stop supervise.
                let _ = match stream {
                    Stream::Stdout => stdout.lock().write_all(&text),
                    Stream::Stderr => stderr.lock().write_all(&text),
                };
                q.fetch_sub(text.len(), Ordering::Relaxed);
            }
        })
        .map_or_else(
            |e| eprintln!("supervise | cannot start output thread: {e}"),
            |_| (),
        );
    (Output { tx, queued }, Writer)
}

impl Writer {
    /// Waits until every queued line is written, at most `limit`: a stdout
    /// nobody reads must not keep supervise from exiting.
    pub fn finish(self, output: Output, limit: Duration) {
        let (ack, done) = std::sync::mpsc::channel();
        if output.tx.send(Line::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(limit);
        }
    }
}

impl Output {
    /// Queues `text` unless the queue is full; false when dropped.
    fn try_send(&self, stream: Stream, text: Vec<u8>) -> bool {
        let len = text.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if self.tx.send(Line::Text { stream, text }).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queues one of supervise's own log lines (on stderr).
    pub fn log(&self, text: &[u8]) {
        let mut line = b"supervise | ".to_vec();
        line.extend_from_slice(text);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        self.try_send(Stream::Stderr, line);
    }

    /// Reads `pipe` to its end, passing each line on with `name | `.
    pub async fn pass_through(
        self,
        name: String,
        stream: Stream,
        mut pipe: tokio::net::unix::pipe::Receiver,
    ) {
        let prefix = format!("{name} | ");
        let mut buf = vec![0u8; 8192];
        let mut pending: Vec<u8> = Vec::new();
        let mut dropped: u64 = 0;
        loop {
            let n = match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                let end = start + nl + 1;
                self.emit(&prefix, stream, &pending[start..end], &mut dropped);
                start = end;
            }
            pending.drain(..start);
            while pending.len() >= MAX_LINE {
                let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
                self.emit(&prefix, stream, &piece, &mut dropped);
            }
        }
        if !pending.is_empty() {
            self.emit(&prefix, stream, &pending, &mut dropped);
        }
        if dropped > 0 {
            // One short line per stream, past the budget: the count must
            // not be lost, and the reader must not wait for room.
            self.force_send(stream, drop_notice(&prefix, dropped));
        }
    }

    fn force_send(&self, stream: Stream, text: Vec<u8>) {
        let len = text.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(Line::Text { stream, text }).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    fn emit(&self, prefix: &str, stream: Stream, text: &[u8], dropped: &mut u64) {
        if *dropped > 0 {
            if !self.try_send(stream, drop_notice(prefix, *dropped)) {
                *dropped += 1;
                return;
            }
            *dropped = 0;
        }
        let mut line = Vec::with_capacity(prefix.len() + text.len() + 1);
        line.extend_from_slice(prefix.as_bytes());
        line.extend_from_slice(text);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if !self.try_send(stream, line) {
            *dropped += 1;
        }
    }
}

fn drop_notice(prefix: &str, dropped: u64) -> Vec<u8> {
    format!("{prefix}[supervise: {dropped} lines dropped, output not read fast enough]\n")
        .into_bytes()
}

/// Lets `tracing` write supervise's own log lines through the queue, so a
/// blocked stderr never blocks supervise itself.
#[derive(Debug, Clone)]
pub struct LogWriter(pub Output);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber formats a whole event, then writes it at once.
        for line in buf.split_inclusive(|&b| b == b'\n') {
            // The fmt layer right-aligns levels (" INFO"); one space is enough.
            let start = line.iter().position(|&b| b != b' ').unwrap_or(0);
            self.0.log(&line[start..]);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}
