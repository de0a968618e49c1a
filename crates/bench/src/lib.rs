//! What the benchmark binaries measure processes and the machine with: CPU times, resident
//! memory, load and child pids from `/proc`, and the roles' own figures from their `/metrics`
//! ([`metrics`]), read the same way by every benchmark. Linux only; no role uses it.

use std::time::Duration;

pub mod metrics;

/// `/proc/<pid>/stat`'s utime, stime, cutime and cstime, in clock ticks (fields 14 to 17,
/// counted from the pid; the command name before them, in parentheses, may contain spaces).
fn stat_ticks(pid: &str) -> Option<[u64; 4]> {
    let rest = stat_from_state(pid)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some([field(14)?, field(15)?, field(16)?, field(17)?])
}

/// `/proc/<pid>/stat` from field 3 (the state) on: after the command name, in parentheses,
/// which may contain spaces.
fn stat_from_state(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(") ")?.1.to_owned())
}

fn ticks(count: u64) -> Duration {
    Duration::from_secs_f64(count as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// User plus system CPU time a process has used so far (utime + stime), at clock-tick
/// resolution (10 ms): measure phases long enough for that not to matter.
pub fn cpu_time(pid: u32) -> Duration {
    let (user, system) = user_system_time(pid);
    user + system
}

/// [`cpu_time`]'s two parts: the CPU time a process used in user space (its own code and its
/// libraries') and in the kernel on its behalf (system calls, the network stack it drives).
pub fn user_system_time(pid: u32) -> (Duration, Duration) {
    let [user, system, ..] = stat_ticks(&pid.to_string()).unwrap_or_default();
    (ticks(user), ticks(system))
}

/// User plus system CPU time of this process's children that it has waited for, so far
/// (cutime + cstime), at clock-tick resolution.
pub fn children_cpu_time() -> Duration {
    ticks(stat_ticks("self").map_or(0, |[.., user, system]| user + system))
}

/// Time a process's threads spent runnable but waiting for a CPU so far (the second field
/// of `/proc/<pid>/task/<tid>/schedstat`, summed over its threads that still exist).
pub fn run_queue_wait(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split(' ').nth(1)?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// Lets every thread of process `pid` run only on `cpus` (`sched_setaffinity` on each of
/// `/proc/<pid>/task`); a thread started later inherits the CPUs of the thread that starts it.
pub fn set_cpus(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    let set = cpu_set(cpus);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let name = task?.file_name();
        let tid = name
            .to_str()
            .and_then(|tid| tid.parse().ok())
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| {
                anyhow::anyhow!("/proc/{pid}/task/{} is not a thread id", name.display())
            })?;
        match rustix::thread::sched_setaffinity(Some(tid), &set) {
            // A thread that ended meanwhile.
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => anyhow::bail!("setting the CPUs of thread {tid:?} of process {pid}: {e}"),
        }
    }
    Ok(())
}

/// Lets the calling thread run only on `cpus`; a thread it starts later inherits them.
pub fn set_thread_cpus(cpus: &[usize]) -> anyhow::Result<()> {
    rustix::thread::sched_setaffinity(None, &cpu_set(cpus))
        .map_err(|e| anyhow::anyhow!("setting the CPUs of this thread: {e}"))
}

fn cpu_set(cpus: &[usize]) -> rustix::thread::CpuSet {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    set
}

/// The two halves of this process's CPUs, for a benchmark to keep processes apart
/// ([`set_cpus`]): `ops/bench gateway` and `ops/bench-fleet` run the gateway and the bench's
/// show client on the first and the monitors on the second, `vnfm-bench appends` (in its placed
/// runs) the bench on the first and nats-server on the second; every other process on all.
///
/// Why: a host that runs monitors beside the API gives them cores of their own, and a remote
/// client shares none with them. With every process on every core (2026-12-04 and 05), the
/// show p99 with a monitor running was 1.23 to 1.66 times the same paused (`ops/bench
/// gateway`): its probing slowed the client and the gateway on the cores it shared with them.
/// Not by the CPU it takes (a process burning as much in its place measured 1.00 to 1.04), nor
/// by its writes (a monitor that wrote nothing measured 1.10 to 1.28). Placed so, 1.03 to 1.12
/// (README).
pub struct Placement {
    pub first: Vec<usize>,
    pub second: Vec<usize>,
}

impl Placement {
    /// The halves of this process's CPUs; `None` on one CPU, where there is nothing to place.
    pub fn halves() -> Option<Placement> {
        let cpus = rustix::thread::sched_getaffinity(None).ok()?;
        let usable: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| cpus.is_set(cpu))
            .collect();
        if usable.len() < 2 {
            return None;
        }
        let (first, second) = usable.split_at(usable.len() / 2);
        Some(Placement {
            first: first.to_vec(),
            second: second.to_vec(),
        })
    }

    /// Both halves: every CPU the placement was made from.
    pub fn all(&self) -> Vec<usize> {
        [self.first.as_slice(), &self.second].concat()
    }
}

/// The machine's busy (not idle, not iowait) CPU time so far, from `/proc/stat`.
pub fn machine_busy() -> Duration {
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest time is within user).
            Some(fields.iter().take(8).sum::<u64>() - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0);
    ticks(busy)
}

/// The pid of this process's child whose command line has an argument containing `needle`.
pub fn child_pid_with_arg(needle: &str) -> anyhow::Result<u32> {
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(format!("/proc/{pid}/cmdline")),
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
        ) else {
            continue;
        };
        let parent = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if parent == Some(me)
            && cmdline
                .split(|b| *b == 0)
                .any(|arg| String::from_utf8_lossy(arg).contains(needle))
        {
            return Ok(pid);
        }
    }
    anyhow::bail!("no child of {me} has an argument containing {needle:?}")
}

/// Stops process `pid` (`SIGSTOP`) and waits until it has stopped (state `T` in
/// `/proc/<pid>/stat`), for at most a second.
pub fn pause(pid: u32) -> anyhow::Result<()> {
    signal(pid, rustix::process::Signal::STOP)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        if stat_from_state(&pid.to_string()).is_some_and(|rest| rest.starts_with('T')) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "process {pid} had not stopped 1 s after SIGSTOP"
        );
        std::thread::yield_now();
    }
}

/// Lets process `pid` go on after [`pause`] (`SIGCONT`).
pub fn resume(pid: u32) -> anyhow::Result<()> {
    signal(pid, rustix::process::Signal::CONT)
}

fn signal(pid: u32, signal: rustix::process::Signal) -> anyhow::Result<()> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| anyhow::anyhow!("{pid} is not a process id"))?;
    rustix::process::kill_process(target, signal)
        .map_err(|e| anyhow::anyhow!("sending {signal:?} to process {pid}: {e}"))
}

/// A process's resident set size now (`VmRSS` of `/proc/<pid>/status`), in bytes; 0 once it
/// is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The machine's load averages over 1, 5 and 15 minutes, as `uptime` prints them (the first
/// three fields of `/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// A busy loop on every CPU at the lowest scheduling class (`SCHED_IDLE`, through util-linux's
/// `chrt`), for as long as it lives, so that no CPU of the machine goes idle.
///
/// Why: on this virtual machine a CPU woken from idle answers later than a busy one (its
/// host may have run something else meanwhile). A phase that leaves the CPUs idle most of
/// the time then pays that wake in its latencies and a busier one does not: the gateway's
/// show p50 was 0.46 ms without monitoring and 0.16 ms with it, in one run. A `SCHED_IDLE`
/// task gives its CPU up as soon as any other task wakes, so it costs the measured processes
/// a context switch at each wake, not CPU time: over a phase of 100,000 shows the gateway's
/// time waiting for a CPU rose from 0.46 to 0.73 s to 2.9 to 6.4 s, while its show p50 and p99
/// fell.
///
/// Each ends by itself once the process that started it is gone (`kill -0` on its parent,
/// a shell builtin, at every turn of the loop): a bench stopped by a signal runs no `Drop`,
/// and its spinners would otherwise spin on and take the idle time of the next run's.
pub struct IdleSpinners(Vec<std::process::Child>);

impl IdleSpinners {
    pub fn start(cpus: usize) -> anyhow::Result<IdleSpinners> {
        let mut spinners = IdleSpinners(Vec::with_capacity(cpus));
        for _ in 0..cpus {
            let spinner = std::process::Command::new("chrt")
                .args([
                    "--idle",
                    "0",
                    "sh",
                    "-c",
                    "while kill -0 $PPID 2>/dev/null; do :; done",
                ])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("starting an idle spinner with chrt: {e}"))?;
            spinners.0.push(spinner);
        }
        Ok(spinners)
    }

    /// Their process ids, to read their CPU time with [`cpu_time`].
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(std::process::Child::id).collect()
    }
}

impl Drop for IdleSpinners {
    fn drop(&mut self) {
        for spinner in &mut self.0 {
            let _ = spinner.kill();
            let _ = spinner.wait();
        }
    }
}
