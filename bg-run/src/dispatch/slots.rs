//! The queues' slots during one pass of the dispatcher.

use std::collections::HashMap;

use bg_shared::queue;
use bg_shared::state_dir::StateDir;

/// The queues' slots during a pass: taken, and how many each queue has.
pub struct Slots {
    pub busy: HashMap<String, usize>,
    pub limits: HashMap<String, usize>,
}

impl Slots {
    /// True if a task of `queue` (or of none) may start now.
    pub fn has_room(&mut self, state: &StateDir, queue: Option<&str>) -> bool {
        let Some(name) = queue else {
            return true;
        };
        let limit = *self
            .limits
            .entry(name.to_string())
            .or_insert_with(|| queue::slots(state, name));
        self.busy.get(name).copied().unwrap_or(0) < limit
    }

    pub fn take(&mut self, queue: Option<&str>) {
        if let Some(name) = queue {
            *self.busy.entry(name.to_string()).or_insert(0) += 1;
        }
    }
}
