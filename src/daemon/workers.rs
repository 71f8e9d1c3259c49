//! One worker thread per CPU, pinned to it, for batches. The kernel's msr driver reads
//! another CPU's register through an inter-processor interrupt (arch/x86/kernel/msr.c:
//! rdmsr_safe_on_cpu); a thread on that
//! CPU reads it locally, and workers for different CPUs run in parallel. Started lazily for
//! the CPUs a batch touches; they end with the session.

use super::session::{execute, Outcome};
use crate::engine::Engine;
use crate::wire::Record;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

/// A request with its batch position and whether to capture the original value of a write.
pub type Task = (usize, Record, bool);
/// An outcome with its batch position.
pub type Done = (usize, Outcome);
/// One job: tasks of one CPU, and where to send their outcomes.
type Job = (Vec<Task>, Sender<Vec<Done>>);

struct Worker {
    jobs: Sender<Job>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
pub struct Workers {
    pool: HashMap<u32, Worker>,
}

fn pin_to(cpu: u32) {
    let mut set = CpuSet::new();
    let pinned = set.set(cpu as usize).and_then(|()| sched_setaffinity(Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        log::warn!("worker for cpu {cpu} runs unpinned: {e}");
    }
}

fn spawn(cpu: u32, mut engine: Engine) -> std::io::Result<Worker> {
    let (jobs, inbox) = channel::<Job>();
    let thread = std::thread::Builder::new().name(format!("cpu{cpu}")).spawn(move || {
        pin_to(cpu);
        for (reqs, done) in inbox {
            let outcomes = reqs.into_iter().map(|(i, req, capture)| (i, execute(&mut engine, &req, capture))).collect();
            if done.send(outcomes).is_err() {
                break;
            }
        }
    })?;
    Ok(Worker { jobs, thread })
}

impl Workers {
    /// Executes requests of known CPUs on their workers (requests of one CPU in order, CPUs in
    /// parallel); returns the outcomes with their batch positions, plus the requests no
    /// worker could take (left for the caller to execute inline).
    pub fn run(&mut self, engine: &Engine, reqs: Vec<Task>) -> (Vec<Done>, Vec<Task>) {
        let mut per_cpu: HashMap<u32, Vec<Task>> = HashMap::new();
        let mut inline = Vec::new();
        for item in reqs {
            per_cpu.entry(item.1.cpu).or_default().push(item);
        }
        let (done, results) = channel();
        let mut pending = 0;
        for (cpu, items) in per_cpu {
            let worker = match self.pool.entry(cpu) {
                Entry::Occupied(slot) => slot.into_mut(),
                Entry::Vacant(slot) => match engine.for_cpu(cpu).and_then(|e| spawn(cpu, e)) {
                    Ok(worker) => slot.insert(worker),
                    Err(_) => {
                        inline.extend(items);
                        continue;
                    }
                },
            };
            match worker.jobs.send((items, done.clone())) {
                Ok(()) => pending += 1,
                Err(lost) => inline.extend(lost.0 .0),
            }
        }
        drop(done);
        let outcomes = results.iter().take(pending).flatten().collect();
        (outcomes, inline)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, worker) in self.pool.drain() {
            drop(worker.jobs);
            let _ = worker.thread.join();
        }
    }
}
