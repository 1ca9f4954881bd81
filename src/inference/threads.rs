//! How many torch threads the model thread uses (`model.intra_op_threads`,
//! `model.inter_op_threads`), applied on the model thread before its first tensor operation.
//!
//! torch's intra-op threads spin while they wait for work: on a machine whose cores also encode,
//! hash, sign and commit every image, each extra one takes a core from that work. Measured on the
//! 2-core development machine (`benches/load.py`; docs/benchmarks.md, "the shipped
//! configuration"), one intra-op thread serves as many images per second as torch's default of
//! one per core at 1 connection and 28-54% more at 8 and 32. The forward pass is about a twelfth of the machine's CPU per signed image
//! at saturation (0.15 of 1.88 ms), so `auto` gives the model one intra-op thread per 8 cores, at
//! least one; on a GPU the CPU threads only queue kernels, and `auto` gives one. Inter-op threads
//! run independent operators side by side, which the served networks (one chain of layers) never
//! have: `auto` gives one.

use std::sync::OnceLock;

use serde::Serialize;

use crate::config::ModelSettings;

/// The torch thread counts of the model thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TorchThreads {
    /// Threads one operator (a convolution, a matrix product) may use.
    pub intra_op: usize,
    /// Threads that run independent operators side by side (one per process).
    pub inter_op: usize,
}

/// Cores per intra-op thread under `auto` on a CPU.
const CORES_PER_INTRA_OP_THREAD: usize = 8;

impl TorchThreads {
    /// The settings' counts, `0` (auto) resolved for `cores` and whether the model runs on a GPU.
    #[must_use]
    pub fn resolve(settings: &ModelSettings, cores: usize, on_gpu: bool) -> Self {
        let auto_intra = if on_gpu {
            1
        } else {
            (cores / CORES_PER_INTRA_OP_THREAD).max(1)
        };
        let pick = |configured: usize, auto: usize| if configured == 0 { auto } else { configured };
        Self {
            intra_op: pick(settings.intra_op_threads, auto_intra),
            inter_op: pick(settings.inter_op_threads, 1),
        }
    }

    /// Sets them for the calling thread (intra-op) and the process (inter-op, which torch lets be
    /// set once, before any inter-op work: a second model in the same process keeps the first
    /// one's count, with a warning); returns what torch then reports on this thread.
    #[must_use]
    pub fn apply(self) -> Self {
        tch::set_num_threads(i32::try_from(self.intra_op).unwrap_or(i32::MAX));
        static INTER_OP: OnceLock<Option<usize>> = OnceLock::new();
        let set = *INTER_OP.get_or_init(|| {
            let wanted = i32::try_from(self.inter_op).unwrap_or(i32::MAX);
            std::panic::catch_unwind(|| tch::set_num_interop_threads(wanted))
                .ok()
                .map(|()| self.inter_op)
        });
        if set != Some(self.inter_op) {
            tracing::warn!(
                wanted = self.inter_op,
                "torch's inter-op thread count is set once per process; keeping the first"
            );
        }
        Self::current()
    }

    /// What torch reports for the calling thread.
    #[must_use]
    pub fn current() -> Self {
        let count = |n: i32| usize::try_from(n).unwrap_or(0);
        Self {
            intra_op: count(tch::get_num_threads()),
            inter_op: count(tch::get_num_interop_threads()),
        }
    }
}

/// The machine's cores as this process may use them.
#[must_use]
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(intra: usize, inter: usize) -> ModelSettings {
        let mut model = crate::config::Settings::load(None).unwrap().model;
        model.intra_op_threads = intra;
        model.inter_op_threads = inter;
        model
    }

    #[test]
    fn auto_gives_one_intra_op_thread_per_eight_cores_and_one_on_a_gpu() {
        let auto = settings(0, 0);
        for (cores, want) in [(1, 1), (2, 1), (8, 1), (15, 1), (16, 2), (64, 8)] {
            let threads = TorchThreads::resolve(&auto, cores, false);
            assert_eq!(threads.intra_op, want, "{cores} cores");
            assert_eq!(threads.inter_op, 1);
        }
        assert_eq!(TorchThreads::resolve(&auto, 64, true).intra_op, 1);
        let set = TorchThreads::resolve(&settings(3, 2), 2, true);
        assert_eq!(
            set,
            TorchThreads {
                intra_op: 3,
                inter_op: 2
            }
        );
    }

    #[test]
    fn the_shipped_settings_are_auto() {
        let shipped = crate::config::Settings::load(None).unwrap().model;
        assert_eq!((shipped.intra_op_threads, shipped.inter_op_threads), (0, 0));
    }

    #[test]
    fn applied_counts_are_what_torch_reports_on_the_thread() {
        let applied = std::thread::spawn(|| {
            TorchThreads {
                intra_op: 2,
                inter_op: 1,
            }
            .apply()
        })
        .join()
        .unwrap();
        assert_eq!(applied.intra_op, 2);
        assert!(applied.inter_op >= 1);
    }
}
