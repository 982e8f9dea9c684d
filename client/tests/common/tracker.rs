//! kpbt-tracker in-process for client tests (port 0, on its own thread).

use kpbt_proto::announce::ScrapeStats;
use kpbt_proto::InfoHash;
use kpbt_tracker::background::BackgroundTracker;

pub struct Tracker(BackgroundTracker);

impl Tracker {
    pub fn start() -> Tracker {
        let config = kpbt_tracker::Config {
            workers: 1,
            ..kpbt_tracker::Config::default()
        };
        Tracker(BackgroundTracker::start_on_loopback(config).expect("tracker starts"))
    }

    /// With a UDP (BEP 15) socket beside the HTTP one.
    pub fn start_with_udp() -> Tracker {
        let config = kpbt_tracker::Config {
            workers: 1,
            ..kpbt_tracker::Config::default()
        };
        Tracker(BackgroundTracker::start_on_loopback_with_udp(config).expect("tracker starts"))
    }

    pub fn udp_announce_url(&self) -> String {
        self.0.udp_announce_url()
    }

    /// `completed` events counted since start (kept after the swarm itself is dropped).
    pub fn completed_total(&self) -> u64 {
        self.0.state().metrics.completed.get()
    }

    pub fn udp_announces(&self) -> u64 {
        let m = String::from_utf8(self.0.state().metrics.render()).unwrap();
        m.lines()
            .filter(|l| {
                l.starts_with("kpbt_tracker_announces_total") && l.contains("protocol=\"udp\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    }

    pub fn announce_url(&self) -> String {
        self.0.announce_url()
    }

    pub fn scrape(&self, ih: InfoHash) -> ScrapeStats {
        // The memory store answers synchronously, so this works inside a tokio test too.
        let store = self.0.state().store.as_memory().expect("memory store");
        store.scrape(&[ih])[0].1
    }
}
