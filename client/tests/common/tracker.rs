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

    pub fn announce_url(&self) -> String {
        self.0.announce_url()
    }

    pub fn scrape(&self, ih: InfoHash) -> ScrapeStats {
        // The memory store answers synchronously, so this works inside a tokio test too.
        let store = self.0.state().store.as_memory().expect("memory store");
        store.scrape(&[ih])[0].1
    }
}
