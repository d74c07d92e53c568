//! How the answers' kernel arrival stamps were judged: a type shared by the stage that
//! judges them (`send::arrival`) and those that count and tell (`record`, `report`).

use serde::Serialize;

/// How one answer's kernel arrival stamp was judged (see `send::arrival`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Not read after a held sleep its request was sent before: nothing to check.
    Unchecked,
    /// Stamped before the wake-up that read it.
    OnTime,
    /// Unstamped, or stamped after the wake-up that read it.
    Late,
    /// Read after the worker stopped holding its sleeps: timed as read, on arrival.
    Unheld,
}

/// One target's answers (warm-up included: the check is about the kernel, not the
/// service) by how their arrival stamps were judged. Counts add up across workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StampCounts {
    /// Answers read after a held sleep their request was sent before.
    pub checked: u64,
    /// Of those, stamped after that sleep ended, or not at all.
    pub late: u64,
    /// Answers read after their worker stopped holding its sleeps.
    pub unheld: u64,
}

impl StampCounts {
    #[inline]
    pub fn count(&mut self, s: Stamp) {
        match s {
            Stamp::Unchecked => {}
            Stamp::OnTime => self.checked += 1,
            Stamp::Late => {
                self.checked += 1;
                self.late += 1;
            }
            Stamp::Unheld => self.unheld += 1,
        }
    }

    pub fn merge(&mut self, o: &StampCounts) {
        self.checked += o.checked;
        self.late += o.late;
        self.unheld += o.unheld;
    }
}
