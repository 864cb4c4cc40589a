//! The faults the soak injects, and the seeded generator that picks them.

/// xorshift64*: a seeded generator small enough to live in the test.
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One injected fault.
#[derive(Clone, Copy, Debug)]
pub(super) enum Fault {
    /// `kill -9` of a worker, then a new one.
    KillWorker,
    /// SIGTERM to a worker (it drains and exits 0), then a new one.
    StopWorker,
    /// RabbitMQ stopped for 5 s, then started again.
    BrokerOutage,
    /// Postgres restarted (fast shutdown: every connection is cut).
    PostgresRestart,
}

/// Every kind of fault, each injected once per round in a random order.
pub(super) const FAULTS: [Fault; 4] =
    [Fault::KillWorker, Fault::StopWorker, Fault::BrokerOutage, Fault::PostgresRestart];
