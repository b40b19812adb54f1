//! How fast the machine itself ran while a latency was measured.
//!
//! This bench runs on a shared VM whose host now and then slows every guest thread for tens
//! of milliseconds at a time, and the guest reports no steal time for it. A thread doing
//! the same arithmetic over and over, alone on an idle VM, sees it take 10–20 times as long
//! during such a spell while its own CPU clock counts the whole time as running (so it was
//! not waiting for another guest thread: the host ran something else on that CPU). A
//! request that falls in such a spell measures the host, not the code: the brokered path
//! wakes four processes where the direct one wakes two, so a spell that slows the direct
//! request 17× to 1.4 ms slows the brokered one to 5 ms or more.
//!
//! A canary thread per CPU, pinned there, repeats a fixed unit of arithmetic every
//! [`PAUSE`] and notes each unit that took more than [`SLOWED`] times the CPU's fastest
//! while its CPU time kept pace with the wall clock. The latency run reports its figures
//! over every request, and again over the requests no such spell touched, with the share of
//! the run that was slowed: both, so that a reader sees what the host did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a canary rests between units: at a 10–40 µs unit, a few percent of a CPU.
const PAUSE: Duration = Duration::from_micros(500);

/// Multiply-adds in one unit.
const UNIT_STEPS: u64 = 20_000;

/// A unit slower than this many times the CPU's fastest marks a slowed spell. The
/// brokered path costs about three times the direct one, so below ~8× its added latency
/// stays within the 2 ms target even on the slowest requests; the host's spells measure
/// 15–20×.
pub const SLOWED: u32 = 8;

/// Counted as host time only while the unit's thread had the CPU for most of the wall
/// time (a guest preemption shows as CPU time far below wall time).
const ON_CPU_SHARE: f64 = 0.8;

/// How far around a slowed unit its spell is taken to reach (a unit only samples).
const MARGIN: Duration = Duration::from_millis(1);

/// The fastest share of units that sets a CPU's full speed (its 10th percentile).
const FULL_SPEED_QUANTILE: f64 = 0.1;

struct Unit {
    start: Instant,
    wall: Duration,
    cpu: Duration,
}

/// The canaries while they run.
pub struct Canary {
    stop: Arc<AtomicBool>,
    started: Instant,
    threads: Vec<JoinHandle<Vec<Unit>>>,
}

/// What the canaries saw: the spells when the host slowed a CPU.
pub struct HostSpeed {
    spells: Vec<(Instant, Instant)>,
    /// Share of the watched time inside a spell.
    pub slowed_share: f64,
    /// The slowest unit against its CPU's fastest (host time only).
    pub worst_factor: f64,
    /// The fastest unit, in µs (the slowest CPU's 10th percentile).
    pub full_speed_unit_us: f64,
    pub units: usize,
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pin_to(cpu: usize) {
    // SAFETY: the set is zeroed, then one bit set; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn unit() {
    let mut x = 0u64;
    for i in 0..UNIT_STEPS {
        x = x.wrapping_add(std::hint::black_box(i).wrapping_mul(i));
    }
    std::hint::black_box(x);
}

fn watch(cpu: usize, stop: Arc<AtomicBool>) -> Vec<Unit> {
    pin_to(cpu);
    let mut units = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let cpu0 = thread_cpu_time();
        unit();
        let cpu = thread_cpu_time().saturating_sub(cpu0);
        units.push(Unit {
            start,
            wall: start.elapsed(),
            cpu,
        });
        std::thread::sleep(PAUSE);
    }
    units
}

impl Canary {
    /// One canary per CPU this process may run on.
    pub fn start() -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..cpus)
            .map(|cpu| {
                let stop = stop.clone();
                std::thread::spawn(move || watch(cpu, stop))
            })
            .collect();
        Canary {
            stop,
            started: Instant::now(),
            threads,
        }
    }

    pub fn finish(self) -> HostSpeed {
        self.stop.store(true, Ordering::Relaxed);
        let span = self.started.elapsed();
        let per_cpu: Vec<Vec<Unit>> = self
            .threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect();
        HostSpeed::from_units(per_cpu, self.started, span)
    }
}

impl HostSpeed {
    fn from_units(per_cpu: Vec<Vec<Unit>>, started: Instant, span: Duration) -> HostSpeed {
        let mut spells = Vec::new();
        let mut worst: f64 = 1.0;
        let mut full_speed = Duration::ZERO;
        let mut units = 0;
        for cpu in &per_cpu {
            let mut walls: Vec<Duration> = cpu.iter().map(|u| u.wall).collect();
            if walls.is_empty() {
                continue;
            }
            units += walls.len();
            walls.sort();
            let fastest = walls[(walls.len() as f64 * FULL_SPEED_QUANTILE) as usize];
            full_speed = full_speed.max(fastest);
            for u in cpu {
                let on_cpu = u.cpu.as_secs_f64() >= u.wall.as_secs_f64() * ON_CPU_SHARE;
                if !on_cpu {
                    continue;
                }
                let factor = u.wall.as_secs_f64() / fastest.as_secs_f64().max(1e-9);
                worst = worst.max(factor);
                if factor > f64::from(SLOWED) {
                    let from = u.start.checked_sub(MARGIN).unwrap_or(u.start);
                    spells.push((from, u.start + u.wall + MARGIN));
                }
            }
        }
        let spells = merge(spells);
        let end = started + span;
        let slowed: Duration = spells
            .iter()
            .map(|&(a, b)| b.min(end).saturating_duration_since(a.max(started)))
            .sum();
        HostSpeed {
            spells,
            slowed_share: slowed.as_secs_f64() / span.as_secs_f64().max(1e-9),
            worst_factor: worst,
            full_speed_unit_us: full_speed.as_secs_f64() * 1e6,
            units,
        }
    }

    /// Whether a spell touched `[from, to]`.
    pub fn slowed_during(&self, from: Instant, to: Instant) -> bool {
        let after = self.spells.partition_point(|&(a, _)| a <= to);
        after > 0 && self.spells[after - 1].1 >= from
    }
}

/// Sorted, overlapping spans joined.
fn merge(mut spans: Vec<(Instant, Instant)>) -> Vec<(Instant, Instant)> {
    spans.sort_by_key(|s| s.0);
    let mut out: Vec<(Instant, Instant)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The canaries alone for `secs`: how often this machine's host slows it with nothing
/// of ours running.
pub fn alone(secs: u64) -> serde_json::Value {
    let canary = Canary::start();
    std::thread::sleep(Duration::from_secs(secs));
    let h = canary.finish();
    serde_json::json!({
        "secs": secs,
        "units": h.units,
        "slowed_pct": h.slowed_share * 100.0,
        "worst_factor": h.worst_factor,
        "full_speed_unit_us": h.full_speed_unit_us,
    })
}
