//! Per-address limits: how many connections one source address may hold
//! (`--max-conns-per-ip`) and how fast it may open new ones
//! (`--max-connects-per-ip`, a token bucket). Pure: the loop hands in the
//! time and the address at accept and at close, and nothing else; a
//! heartbeat never comes here.
//!
//! # Rules
//! - **Count.** An address holds at most `max_conns` connections; one more
//!   is refused (`too-many-connections`). The count goes down when a
//!   connection the table admitted closes ([`Addresses::handle_close`]).
//! - **Rate.** Each address has a bucket of `count` tokens, refilled at
//!   `count` per `per`; each accepted connect takes one, and a connect
//!   finding the bucket empty is refused. A refused connect does not
//!   take a token (the bucket refills while the flood goes on).
//! - **Bounded.** An entry lives while its address holds a connection or
//!   its bucket is refilling. Entries past that are swept out when the
//!   table grows (amortized: a sweep at a size twice the size left by the
//!   last sweep), and the table never holds more than `max_entries`: when
//!   full, an address with no connection loses its entry (its bucket is
//!   forgotten, so it starts full again). An address with connections is
//!   never forgotten, so its count stays exact.
//! - **Log.** A refusal is logged at most once per address per
//!   [`LOG_EVERY_MS`], with the number refused since the last line.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::{millis_ceil, Tick};

/// At most one log line per address per this many ms.
pub const LOG_EVERY_MS: Tick = 10_000;

/// A number of connects per period, as `--max-connects-per-ip` takes it:
/// `N/s`, `N/m`, `N/h` or `N/<duration>` (`20/10s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRate {
    /// How many connects per period (and the burst: the bucket's size).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl ConnectRate {
    /// Parses `N/s`, `N/m`, `N/h` or `N/<duration>` (see
    /// [`parse_duration`](crate::duration::parse_duration)); N at least 1,
    /// the period at least 1 ms.
    pub fn parse(s: &str) -> Result<ConnectRate, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected N/s, N/m, N/h or N/<duration>"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: {n:?} is not a count"))?;
        let per = match per.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            d => crate::duration::parse_duration(d).map_err(|e| format!("{s:?}: {e}"))?,
        };
        if count == 0 || per < Duration::from_millis(1) {
            return Err(format!(
                "{s:?}: the count and the period must be at least 1 and 1ms"
            ));
        }
        Ok(ConnectRate { count, per })
    }
}

impl fmt::Display for ConnectRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}ms", self.count, self.per.as_millis())
    }
}

/// Why a connect is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The address holds `max_conns` connections already.
    TooMany,
    /// The address's bucket is empty.
    TooFast,
}

/// One address's state.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Connections admitted and not yet closed.
    conns: u32,
    /// Tokens, in units of `1 / count` token-periods: the bucket holds
    /// `count * period_ms` units when full, gains `count` units per ms, and
    /// a connect costs `period_ms` units. Integers, so no rounding drift.
    units: u64,
    /// When `units` was last brought up to date.
    refilled_at: Tick,
    /// When a refusal was last logged (`None`: never), and refusals since.
    logged_at: Option<Tick>,
    refused: u32,
}

/// The per-address table. See the module docs.
#[derive(Debug)]
pub(crate) struct Addresses {
    max_conns: Option<u32>,
    rate: Option<(u64, u64)>,
    max_entries: usize,
    sweep_at: usize,
    entries: HashMap<IpAddr, Entry>,
}

/// The smallest size at which the table sweeps.
const MIN_SWEEP: usize = 1024;

impl Addresses {
    /// A table for the given limits (`None`: not limited), holding at most
    /// `max_entries` addresses (at least 1).
    pub fn new(max_conns: Option<u32>, rate: Option<ConnectRate>, max_entries: usize) -> Addresses {
        let max_entries = max_entries.max(1);
        Addresses {
            max_conns,
            rate: rate.map(|r| (u64::from(r.count), millis_ceil(r.per).max(1))),
            max_entries,
            sweep_at: MIN_SWEEP.min(max_entries),
            entries: HashMap::new(),
        }
    }

    /// How many addresses the table holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A connect from `ip` at `now`: `Ok` if it is admitted (and counted
    /// until [`Addresses::handle_close`]), or why not.
    pub fn handle_connect(&mut self, now: Tick, ip: IpAddr) -> Result<(), Refusal> {
        let (max_conns, rate) = (self.max_conns, self.rate);
        let e = self.entry(now, ip);
        let refusal = if max_conns.is_some_and(|max| e.conns >= max) {
            Some(Refusal::TooMany)
        } else if let Some((count, per)) = rate {
            refill(e, now, count, per);
            if e.units < per {
                Some(Refusal::TooFast)
            } else {
                e.units -= per;
                None
            }
        } else {
            None
        };
        match refusal {
            None => {
                e.conns += 1;
                Ok(())
            }
            Some(r) => {
                e.refused = e.refused.saturating_add(1);
                if e.logged_at
                    .is_none_or(|at| now.saturating_sub(at) >= LOG_EVERY_MS)
                {
                    let what = match r {
                        Refusal::TooMany => "too many connections",
                        Refusal::TooFast => "connecting too fast",
                    };
                    log::warn!(
                        "{ip}: {what}: refused {} connect(s) since the last such line",
                        e.refused
                    );
                    e.logged_at = Some(now);
                    e.refused = 0;
                }
                Err(r)
            }
        }
    }

    /// The entry of `ip`, made (with a full bucket) if it has none; room is
    /// made in the table first.
    fn entry(&mut self, now: Tick, ip: IpAddr) -> &mut Entry {
        if !self.entries.contains_key(&ip) {
            self.make_room(now);
        }
        let full = self
            .rate
            .map_or(0, |(count, per)| count.saturating_mul(per));
        self.entries.entry(ip).or_insert(Entry {
            conns: 0,
            units: full,
            refilled_at: now,
            logged_at: None,
            refused: 0,
        })
    }

    /// A connection from `ip` that another worker admitted and handed to
    /// this one: counted here from now on (its connect was counted there,
    /// and released there when it left), without a rate check.
    pub fn handle_adopt(&mut self, now: Tick, ip: IpAddr) {
        let e = self.entry(now, ip);
        e.conns = e.conns.saturating_add(1);
    }

    /// A connection from `ip` that [`Addresses::handle_connect`] admitted
    /// has closed (or was handed to another worker).
    pub fn handle_close(&mut self, ip: IpAddr) {
        if let Some(e) = self.entries.get_mut(&ip) {
            e.conns = e.conns.saturating_sub(1);
        }
    }

    /// Whether `e` can be forgotten at `now`: no connection and a bucket
    /// that is full again (and no refusal logged recently).
    fn idle(&self, e: &Entry, now: Tick) -> bool {
        if e.conns > 0 {
            return false;
        }
        if e.logged_at
            .is_some_and(|at| now.saturating_sub(at) < LOG_EVERY_MS)
        {
            return false;
        }
        match self.rate {
            None => true,
            Some((count, per)) => {
                let missing = count.saturating_mul(per).saturating_sub(e.units);
                now.saturating_sub(e.refilled_at).saturating_mul(count) >= missing
            }
        }
    }

    /// Sweeps when the table has grown enough, and makes room for one more
    /// entry when it is full.
    fn make_room(&mut self, now: Tick) {
        if self.entries.len() >= self.sweep_at {
            let entries = std::mem::take(&mut self.entries);
            self.entries = entries
                .into_iter()
                .filter(|(_, e)| !self.idle(e, now))
                .collect();
            self.sweep_at = self
                .entries
                .len()
                .saturating_mul(2)
                .max(MIN_SWEEP)
                .min(self.max_entries);
        }
        if self.entries.len() >= self.max_entries {
            // Full of recent addresses: forget one that holds no connection.
            let victim = self
                .entries
                .iter()
                .find(|(_, e)| e.conns == 0)
                .map(|(ip, _)| *ip);
            if let Some(ip) = victim {
                self.entries.remove(&ip);
            }
        }
    }
}

fn refill(e: &mut Entry, now: Tick, count: u64, per: u64) {
    let elapsed = now.saturating_sub(e.refilled_at);
    e.units = e
        .units
        .saturating_add(elapsed.saturating_mul(count))
        .min(count.saturating_mul(per));
    e.refilled_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    /// Runs a script of connects (`c`) and closes (`x`) from one address,
    /// each at a time, and returns what happened: `+` admitted, `n` too
    /// many, `f` too fast, `.` a close.
    #[track_caller]
    fn check(t: &mut Addresses, script: &[(Tick, char)], expected: &str) {
        let got: String = script
            .iter()
            .map(|&(now, op)| match op {
                'c' => match t.handle_connect(now, ip(1)) {
                    Ok(()) => '+',
                    Err(Refusal::TooMany) => 'n',
                    Err(Refusal::TooFast) => 'f',
                },
                _ => {
                    t.handle_close(ip(1));
                    '.'
                }
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn rates_parse() {
        let r = |s| ConnectRate::parse(s);
        assert_eq!(
            r("10/s"),
            Ok(ConnectRate {
                count: 10,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(r("600/m").map(|r| r.per), Ok(Duration::from_secs(60)));
        assert_eq!(r("1/h").map(|r| r.per), Ok(Duration::from_secs(3600)));
        assert_eq!(r("20/10s").map(|r| r.per), Ok(Duration::from_secs(10)));
        assert_eq!(r("5/250ms").map(|r| r.count), Ok(5));
        for bad in [
            "", "10", "0/s", "x/s", "-1/s", "10/", "10/x", "10/0ms", "/s",
        ] {
            assert!(r(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_count_per_address_is_exact() {
        let mut t = Addresses::new(Some(2), None, 100);
        check(&mut t, &[(0, 'c'), (0, 'c'), (0, 'c'), (0, 'c')], "++nn");
        check(&mut t, &[(0, 'x'), (0, 'c'), (0, 'c')], ".+n");
        // Another address has its own count.
        assert_eq!(t.handle_connect(0, ip(2)), Ok(()));
        // Closing more than was admitted does not go below zero.
        let mut t = Addresses::new(Some(1), None, 100);
        t.handle_close(ip(1));
        check(&mut t, &[(0, 'c'), (0, 'c')], "+n");
    }

    #[test]
    fn a_connection_handed_over_by_another_worker_counts_here() {
        // Adopted connections count against their address, with no rate
        // check; their close releases them like any other.
        let mut t = Addresses::new(Some(2), ConnectRate::parse("1/h").ok(), 100);
        t.handle_adopt(0, ip(1));
        t.handle_adopt(0, ip(1));
        check(&mut t, &[(0, 'c')], "n");
        t.handle_close(ip(1));
        check(&mut t, &[(0, 'c')], "+");
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        // 2 per second: a burst of 2, then one more every 500 ms.
        let rate = ConnectRate::parse("2/s").ok();
        let mut t = Addresses::new(None, rate, 100);
        check(&mut t, &[(0, 'c'), (0, 'c'), (0, 'c')], "++f");
        check(&mut t, &[(499, 'c'), (500, 'c'), (500, 'c')], "f+f");
        // Refusals take no token: the flood does not keep it empty.
        check(&mut t, &[(999, 'c'), (1000, 'c')], "f+");
        // A long pause fills it to the burst, no more.
        check(
            &mut t,
            &[(60_000, 'c'), (60_000, 'c'), (60_000, 'c')],
            "++f",
        );
        // Closing gives no token back.
        check(&mut t, &[(60_000, 'x'), (60_000, 'c')], ".f");
    }

    #[test]
    fn both_limits_at_once() {
        let rate = ConnectRate::parse("3/s").ok();
        let mut t = Addresses::new(Some(1), rate, 100);
        check(&mut t, &[(0, 'c'), (0, 'c'), (0, 'x'), (0, 'c')], "+n.+");
        check(&mut t, &[(0, 'x'), (0, 'c'), (0, 'x'), (0, 'c')], ".+.f");
    }

    #[test]
    fn entries_expire_and_the_table_is_bounded() {
        let rate = ConnectRate::parse("1/s").ok();
        let mut t = Addresses::new(Some(5), rate, 3000);
        // 2,000 addresses connect once and close at once.
        for n in 0..2000 {
            assert_eq!(t.handle_connect(0, ip(n)), Ok(()));
            t.handle_close(ip(n));
        }
        assert!(t.len() <= 2000);
        // A second later their buckets are full: the next sweep drops them.
        for n in 2000..2100 {
            assert_eq!(t.handle_connect(1000, ip(n)), Ok(()));
        }
        assert!(t.len() <= 1100, "{}", t.len());
        // Hold connections from 3,000 addresses: the table is full of
        // addresses with connections; a new one still gets in, since the
        // addresses without connections make room, and the cap holds.
        let mut t = Addresses::new(Some(5), None, 3000);
        for n in 0..3000 {
            assert_eq!(t.handle_connect(0, ip(n)), Ok(()));
        }
        t.handle_close(ip(7));
        assert_eq!(t.handle_connect(0, ip(99_999)), Ok(()));
        assert!(t.len() <= 3000, "{}", t.len());
        // Counts of addresses with connections survived every sweep.
        for _ in 0..4 {
            assert_eq!(t.handle_connect(0, ip(1)), Ok(()));
        }
        assert_eq!(t.handle_connect(0, ip(1)), Err(Refusal::TooMany));
    }

    #[test]
    fn a_refilling_bucket_is_not_forgotten() {
        let rate = ConnectRate::parse("1/m").ok();
        let mut t = Addresses::new(None, rate, 10_000);
        assert_eq!(t.handle_connect(0, ip(1)), Ok(()));
        t.handle_close(ip(1));
        // Many other addresses come and go, forcing sweeps.
        for n in 10..3000 {
            let _ = t.handle_connect(30_000, ip(n));
            t.handle_close(ip(n));
        }
        // Half a minute later the first one's bucket is still empty.
        assert_eq!(t.handle_connect(30_000, ip(1)), Err(Refusal::TooFast));
    }
}
