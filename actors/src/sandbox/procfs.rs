//! What the sandbox reads from `/proc`: a run's CPU time and peak memory, and how many processes
//! a user has (the process limit counts them all).

use std::time::Duration;

/// CPU time and peak memory of a process tree, sampled from `/proc` (processes that live
/// shorter than a sample are missed).
pub(super) struct TreeMeter {
    root: i32,
    /// pid → CPU ticks last seen (a finished process keeps its last figure).
    ticks: std::collections::HashMap<i32, u64>,
    pub(super) peak_rss_kib: u64,
    /// Resident memory of the whole tree at the last sample (KiB).
    pub(super) tree_rss_kib: u64,
}

impl TreeMeter {
    pub(super) fn new(root: i32) -> TreeMeter {
        TreeMeter {
            root,
            ticks: Default::default(),
            peak_rss_kib: 0,
            tree_rss_kib: 0,
        }
    }

    pub(super) fn sample(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        // pid → (parent, cpu ticks) of every process
        let mut all = std::collections::HashMap::new();
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // fields after the command name (which may contain spaces) in parentheses
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            all.insert(pid, (num(1) as i32, num(11) + num(12), num(21)));
        }
        let mut tree = vec![self.root];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(all.iter().filter(|(_, v)| v.0 == parent).map(|(p, _)| *p));
            i += 1;
        }
        let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64) / 1024;
        self.tree_rss_kib = 0;
        for pid in tree {
            if let Some((_, ticks, pages)) = all.get(&pid) {
                self.ticks.insert(pid, *ticks);
                self.tree_rss_kib += pages * page_kib;
            }
            if let Some(kib) = spore_train::child::peak_rss_kib(&pid.to_string()) {
                self.peak_rss_kib = self.peak_rss_kib.max(kib);
            }
        }
    }

    pub(super) fn cpu(&self) -> Duration {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ticks: u64 = self.ticks.values().sum();
        Duration::from_millis(ticks * 1000 / hz)
    }
}

/// Processes (threads included, as RLIMIT_NPROC counts them) that `uid` has now.
pub(super) fn processes_of(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if owner == Some(uid) {
            n += status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(1);
        }
    }
    n
}
