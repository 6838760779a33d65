//! In-process queueing of commands on the same accounts. Optimistic concurrency keeps the
//! event store correct across processes; within one process, commands on one account wait
//! their turn instead of colliding and retrying, so a busy account is served in order
//! rather than answered CONCURRENCY_CONFLICT.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ledger::AccountId;
use tokio::sync::OwnedMutexGuard;

type Slots = HashMap<AccountId, Arc<tokio::sync::Mutex<()>>>;

#[derive(Clone, Debug, Default)]
pub struct StreamLocks {
    slots: Arc<Mutex<Slots>>,
}

/// Held while a command decides and appends; releases (and forgets idle slots) on drop.
#[derive(Debug)]
pub struct StreamGuard {
    held: Vec<OwnedMutexGuard<()>>,
    locks: StreamLocks,
}

impl StreamLocks {
    /// Waits for every account in `ids`, always in id order so two commands never deadlock.
    pub async fn lock(&self, ids: &[AccountId]) -> StreamGuard {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let slots: Vec<_> = {
            let mut map = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            ids.iter()
                .map(|id| map.entry(*id).or_default().clone())
                .collect()
        };
        let mut held = Vec::with_capacity(slots.len());
        for slot in slots {
            held.push(slot.lock_owned().await);
        }
        StreamGuard {
            held,
            locks: self.clone(),
        }
    }

    /// Accounts with a slot (someone holds or waits for it).
    pub fn active(&self) -> usize {
        self.slots.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.held.clear();
        let mut map = self
            .locks
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.retain(|_, slot| Arc::strong_count(slot) > 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn commands_on_one_account_take_turns_and_slots_are_forgotten() {
        let locks = StreamLocks::default();
        let a = AccountId::generate();
        let first = locks.lock(&[a]).await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(&[a]).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second command waits");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the second command gets its turn")
            .expect("task");
        drop(second);
        assert_eq!(locks.active(), 0);
    }

    #[tokio::test]
    async fn transfers_in_opposite_directions_do_not_deadlock() {
        let locks = StreamLocks::default();
        let (a, b) = (AccountId::generate(), AccountId::generate());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let locks = locks.clone();
                tokio::spawn(async move {
                    let pair = if i % 2 == 0 { [a, b] } else { [b, a] };
                    let _guard = locks.lock(&pair).await;
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("no deadlock")
                .expect("task");
        }
        assert_eq!(locks.active(), 0);
    }
}
