//! kpbt-client library (being written).
