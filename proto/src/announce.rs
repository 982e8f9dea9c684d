//! Tracker-side announce and scrape query parsing and reply encoding (being written).
