//! The bounded queue of encoded points between the gather loop and the
//! writer. Points leave it only when InfluxDB has acknowledged them (or when
//! it is full, oldest first), so a failed write is retried with the same
//! points in the same order and a successful one is never sent again.

use std::collections::VecDeque;

/// Encoded lines in gather order, each with a sequence number so a write
/// acknowledged after some of its points were dropped removes exactly the
/// points it carried.
#[derive(Debug)]
pub struct Buffer {
    lines: VecDeque<(u64, String)>,
    next_seq: u64,
    limit: usize,
    pub counters: Counters,
}

/// Totals reported in `internal_collect`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub gathered: u64,
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
    pub input_errors: u64,
}

/// A batch taken for sending: the body and the last sequence number in it.
#[derive(Debug)]
pub struct Batch {
    pub body: String,
    pub points: usize,
    pub last_seq: u64,
}

impl Buffer {
    pub fn new(limit: usize) -> Self {
        Buffer {
            lines: VecDeque::new(),
            next_seq: 0,
            limit: limit.max(1),
            counters: Counters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Raises (never lowers) the capacity, as the gather size becomes known.
    pub fn grow_limit(&mut self, limit: usize) {
        self.limit = self.limit.max(limit);
    }

    /// Appends one encoded line; drops the oldest when full.
    pub fn push(&mut self, line: String) {
        self.counters.gathered += 1;
        while self.lines.len() >= self.limit {
            self.lines.pop_front();
            self.counters.dropped += 1;
        }
        self.lines.push_back((self.next_seq, line));
        self.next_seq += 1;
    }

    /// The oldest `max_points` lines as one newline-separated body, without
    /// removing them.
    pub fn peek_batch(&self, max_points: usize) -> Option<Batch> {
        let mut body = String::new();
        let mut last_seq = None;
        let mut points = 0;
        for (seq, line) in self.lines.iter().take(max_points) {
            body.push_str(line);
            body.push('\n');
            last_seq = Some(*seq);
            points += 1;
        }
        last_seq.map(|last_seq| Batch {
            body,
            points,
            last_seq,
        })
    }

    /// Removes what a successful write carried: every line up to `last_seq`
    /// still present (some may have been dropped meanwhile).
    pub fn acknowledge(&mut self, batch: &Batch) {
        while self
            .lines
            .front()
            .is_some_and(|(s, _)| *s <= batch.last_seq)
        {
            self.lines.pop_front();
        }
        self.counters.written += batch.points as u64;
    }

    /// Removes a batch InfluxDB refused (in part: `rejected` of its points):
    /// retrying it would block everything behind it forever. The refused
    /// points count as dropped, the others as written.
    pub fn discard(&mut self, batch: &Batch, rejected: usize) {
        while self
            .lines
            .front()
            .is_some_and(|(s, _)| *s <= batch.last_seq)
        {
            self.lines.pop_front();
        }
        self.counters.dropped += rejected as u64;
        self.counters.written += (batch.points - rejected) as u64;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn drops_oldest_and_acknowledges_only_what_was_sent() {
        let mut b = Buffer::new(3);
        for i in 0..3 {
            b.push(format!("m v={i}i"));
        }
        let batch = b.peek_batch(2).unwrap();
        assert_eq!(batch.body, "m v=0i\nm v=1i\n");
        // Two more arrive while the write is in flight: 0 and 1 are dropped.
        b.push("m v=3i".into());
        b.push("m v=4i".into());
        assert_eq!(b.counters.dropped, 2);
        b.acknowledge(&batch);
        assert_eq!(b.len(), 3);
        assert_eq!(b.peek_batch(10).unwrap().body, "m v=2i\nm v=3i\nm v=4i\n");
        let batch = b.peek_batch(1).unwrap();
        b.acknowledge(&batch);
        assert_eq!(b.peek_batch(10).unwrap().body, "m v=3i\nm v=4i\n");
        assert_eq!(b.counters.gathered, 5);
    }
}
