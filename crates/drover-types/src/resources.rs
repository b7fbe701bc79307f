//! CPU and memory, the two resources the scheduler packs.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Resources asked for by a task, summed for an allocation, or offered by a
/// node. CPU is in MHz and memory in MiB, as in Nomad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU share in MHz.
    pub cpu_mhz: u64,
    /// Memory in MiB.
    pub memory_mb: u64,
}

impl Resources {
    /// Nomad's default task resources: 100 MHz and 300 MiB.
    pub const TASK_DEFAULT: Resources = Resources { cpu_mhz: 100, memory_mb: 300 };

    /// Whether `self` fits inside `capacity` on both dimensions.
    pub fn fits_in(&self, capacity: &Resources) -> bool {
        self.cpu_mhz <= capacity.cpu_mhz && self.memory_mb <= capacity.memory_mb
    }

    /// `self - other`, floored at zero on each dimension.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_mhz: self.cpu_mhz.saturating_sub(other.cpu_mhz),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
        }
    }
}

impl Add for Resources {
    type Output = Resources;

    fn add(self, other: Resources) -> Resources {
        Resources {
            cpu_mhz: self.cpu_mhz.saturating_add(other.cpu_mhz),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
        }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, other: Resources) {
        *self = *self + other;
    }
}
