//! A CPU budget for one process: a `cpu` cgroup with a CFS quota, so that
//! relay nodes sharing this machine's two cores are measured as nodes on
//! machines of their own would be, each limited by its own CPU and not by
//! the sum of everyone's. Needs root and a writable `cpu` controller
//! (cgroup v1 or v2).

use std::path::PathBuf;

/// The scheduler period the quota is a share of; short, so a node that
/// spent its share waits milliseconds, not a tenth of a second.
const PERIOD_US: u64 = 10_000;

/// One cgroup, removed when dropped (after its processes have ended).
pub struct Budget {
    dir: PathBuf,
    v2: bool,
}

impl Budget {
    /// A fresh group named after `name` and this process.
    pub fn new(name: &str) -> Result<Budget, String> {
        let leaf = format!("ptth-bench-{name}-{}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let (dir, v2) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1.join(leaf), false)
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "cpu"))
        {
            // The root must hand the controller down for the leaf to have it.
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            (v2.join(leaf), true)
        } else {
            return Err("no cpu cgroup controller on this machine".to_owned());
        };
        std::fs::create_dir(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        Ok(Budget { dir, v2 })
    }

    /// Moves the process `pid`, with all its threads, into the group.
    pub fn add(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }

    /// Limits the group to `cpus` cores' worth of time, or lifts the
    /// limit.
    pub fn limit(&self, cpus: Option<f64>) {
        let quota = cpus.map(|cpus| (cpus * PERIOD_US as f64) as u64);
        if self.v2 {
            let quota = quota.map_or_else(|| "max".to_owned(), |quota| quota.to_string());
            self.write("cpu.max", &format!("{quota} {PERIOD_US}"));
        } else {
            self.write("cpu.cfs_period_us", &PERIOD_US.to_string());
            let quota = quota.map_or_else(|| "-1".to_owned(), |quota| quota.to_string());
            self.write("cpu.cfs_quota_us", &quota);
        }
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|error| panic!("{}: {value}: {error}", path.display()));
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}
